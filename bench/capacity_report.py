"""Capacity results as tables: loads against llama-server, single stream, agreement, memory, and the targets."""

from typing import Any

from bench.capacity_field import LLAMA_SERVER
from bench.report import Row, markdown

LOAD_COLUMNS = [
    ("scenario", "contestant"), ("clients", "clients"), ("workload", "workload"), ("requests", "req"),
    ("failed", "failed"), ("agg_tok_s", "agg tok/s"), ("agg_x", "agg x llama-server"),
    ("ttft_p50_ms", "TTFT p50 ms"), ("ttft_p50_x", "TTFT p50 x llama-server"), ("ttft_p95_ms", "TTFT p95 ms"),
    ("ttft_p95_x", "TTFT p95 x llama-server"), ("decode_tok_s", "per-stream decode tok/s"),
    ("engine_cores", "model cores"), ("others_cores", "other tenants cores"), ("agg_per_core", "tok/s per model core"),
]  # fmt: skip
SINGLE_COLUMNS = [
    ("scenario", "contestant"), ("threads", "threads"), ("requests", "req"), ("decode_tok_s", "decode tok/s"),
    ("ttft_p50_ms", "TTFT p50 ms"), ("decode_x", "decode x raw"),
]  # fmt: skip
AGREE_COLUMNS = [
    ("scenario", "contestant"), ("clients", "clients"), ("compared", "answers compared"),
    ("identical", "identical to llamaq alone"), ("fraction", "fraction"),
]  # fmt: skip
MEMORY_COLUMNS = [
    ("slots", "slots"), ("idle_mb", "RSS MB warm, idle"), ("peak_mb", "peak RSS MB under load"),
    ("after_mb", "RSS MB after load"), ("anon_after_mb", "anon MB after load"),
    ("kv_rss_mb", "KV MB per slot (RSS, vs 1 slot)"), ("kv_shape_mb", "KV MB per slot (shape)"),
]  # fmt: skip
TARGET_COLUMNS = [("target", "target"), ("measured", "measured"), ("goal", "goal"), ("met", "met")]


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def against_peer(rows: list[Row]) -> list[Row]:
    """Ratios to llama-server's row of the same load, workload and round (none without it)."""
    peer = next((row for row in rows if row["scenario"] == LLAMA_SERVER), None)
    out = []
    for row in rows:
        extra: Row = {"agg_x": None, "ttft_p50_x": None, "ttft_p95_x": None}
        if peer is not None:
            extra["agg_x"] = _ratio(row["agg_tok_s"], peer["agg_tok_s"])
            extra["ttft_p50_x"] = _ratio(row["ttft_p50_ms"], peer["ttft_p50_ms"])
            extra["ttft_p95_x"] = _ratio(row["ttft_p95_ms"], peer["ttft_p95_ms"])
        out.append(row | extra)
    return out


def _score(rows: list[Row], name: str) -> float:
    """A layout's mean ratio to llama-server over every load and workload (its aggregate tok/s without a peer)."""
    mine = [row for row in rows if row["scenario"] == name]
    key = "agg_x" if all(row["agg_x"] is not None for row in mine) else "agg_tok_s"
    values = [row[key] or 0.0 for row in mine]
    return sum(values) / len(values) if values else 0.0


def best_layout(rows: list[Row], names: list[str]) -> str:
    return max(names, key=lambda name: _score(rows, name))


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "NO")


def targets(loads: list[Row], best: str, single_x: float | None) -> list[Row]:
    out: list[Row] = []
    for row in (r for r in loads if r["scenario"] == best):
        where = f"{row['workload']}, {row['clients']} clients"
        agg, ttft = row["agg_x"], row["ttft_p50_x"]
        agg_ok = None if agg is None else agg >= 1.25
        out.append(_target(f"aggregate tok/s x llama-server ({where})", agg, ">= 1.25", agg_ok))
        out.append(_target(f"TTFT p50 x llama-server ({where})", ttft, "<= 1.0", None if ttft is None else ttft <= 1.0))
    ok = None if single_x is None else single_x >= 0.97
    out.append(_target("single-stream decode x raw llama-cpp-python", single_x, ">= 0.97", ok))
    return out


def _target(name: str, value: float | None, goal: str, ok: bool | None) -> Row:
    return {"target": name, "measured": value, "goal": goal, "met": _met(ok)}


def render(result: dict[str, Any]) -> str:
    machine = ", ".join(f"{k}={v}" for k, v in result["machine"].items())
    plan = result["plan"]
    head = [
        f"machine: {machine}",
        f"plan: loads={plan['loads']} per_client={plan['per_client']} max_tokens={plan['max_tokens']} "
        f"rounds={plan['rounds']} n_ctx per slot={plan['n_ctx']} greedy; weights {result['weights']}",
        f"llama-server: {result['server_command'] or 'not run'}",
        "load average (1 min) at start / after loads / at end: " + " / ".join(map(str, result["load_avg"])),
        f"best layout: {result['best']}",
    ]
    tables = [
        markdown(result["loads"], LOAD_COLUMNS),
        markdown(result["single"], SINGLE_COLUMNS),
        markdown(result["agreement"], AGREE_COLUMNS),
        markdown(result["memory"], MEMORY_COLUMNS),
        markdown(result["targets"], TARGET_COLUMNS),
    ]
    return "\n\n".join(head + tables)
