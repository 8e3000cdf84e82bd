"""Results as tables: per-scenario numbers with ratios against each baseline, admission, and the targets."""

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench.contests import LLAMAQ_1, LLAMAQ_2, PEER, RAW, RAW_COLD

Row = dict[str, Any]

COLUMNS = [
    ("scenario", "scenario"), ("clients", "clients"), ("requests", "req"), ("failed", "failed"),
    ("ttft_p50_ms", "TTFT p50 ms"), ("ttft_p95_ms", "TTFT p95 ms"), ("decode_tok_s", "decode tok/s"),
    ("e2e_p50_s", "e2e p50 s"), ("e2e_p95_s", "e2e p95 s"), ("agg_tok_s", "agg tok/s"),
    ("api_rss_mb", "API RSS MB"), ("worker_rss_mb", "worker RSS MB"), ("relay_cpu_ms_tok", "API+redis CPU ms/tok"),
    ("engine_cores", "model cores"), ("others_cores", "other tenants cores"), ("agg_per_core", "tok/s per model core"),
    ("vs", "vs"), ("ttft_delta_ms", "+TTFT p50 ms"), ("decode_ratio", "decode x"), ("agg_ratio", "agg x"),
]  # fmt: skip
FRONTDOOR_COLUMNS = [
    ("scenario", "scenario"), ("rps", "req/s"), ("requests", "requests"), ("status", "statuses"),
    ("latency_p50_ms", "p50 ms"), ("latency_p99_ms", "p99 ms"), ("api_rss_mb", "API RSS MB"),
    ("api_cores", "API cores"), ("rps_per_core", "req/s per API core"),
]  # fmt: skip
TARGET_COLUMNS = [("target", "target"), ("measured", "measured"), ("goal", "goal"), ("met", "met")]
SUMMED = {"requests", "failed", "status"}


def baseline_of(row: Row) -> tuple[str, int] | None:
    """Which (scenario, clients) a row is compared with."""
    name, clients = row["scenario"], row["clients"]
    if clients == 1 and name == LLAMAQ_1:
        # Like for like: the worker evaluates a seeded request's whole prompt, so does this raw row.
        return RAW_COLD, 1
    if clients == 1 and name != RAW:
        return RAW, 1
    if name == LLAMAQ_2:
        return LLAMAQ_1, clients
    if name.startswith(PEER) and clients > 1:
        return LLAMAQ_2, clients
    return None


def clients_match_single(row: Row) -> bool:
    """Added TTFT means something for one client only; under load it is queueing time."""
    return bool(row["clients"] == 1)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def with_ratios(rows: list[Row]) -> list[Row]:
    index = {(row["scenario"], row["clients"]): row for row in rows}
    out = []
    for row in rows:
        base = index.get(baseline_of(row) or ("", 0))
        extra: Row = {"vs": None, "ttft_delta_ms": None, "decode_ratio": None, "agg_ratio": None}
        if base is not None:
            extra["vs"] = f"{base['scenario']} ({base['clients']}c)"
            if clients_match_single(row) and row["ttft_p50_ms"] is not None and base["ttft_p50_ms"] is not None:
                extra["ttft_delta_ms"] = row["ttft_p50_ms"] - base["ttft_p50_ms"]
            extra["decode_ratio"] = _ratio(row["decode_tok_s"], base["decode_tok_s"])
            extra["agg_ratio"] = _ratio(row["agg_tok_s"], base["agg_tok_s"])
        out.append(row | extra)
    return out


def merge(repetitions: Sequence[list[Row]]) -> list[Row]:
    """One row per scenario: medians of numbers across repetitions; counts (requests, statuses) summed."""
    merged: list[Row] = []
    for rows in zip(*repetitions, strict=True):
        row: Row = {}
        for field, value in rows[0].items():
            values = [r[field] for r in rows if isinstance(r.get(field), int | float)]
            if isinstance(value, dict) and field in SUMMED:
                row[field] = dict(sum((Counter(r[field]) for r in rows), Counter()))
            elif values and field != "clients" and (value is None or isinstance(value, int | float)):
                row[field] = sum(values) if field in SUMMED else statistics.median(values)
            else:
                row[field] = value
        merged.append(row)
    return merged


def cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, dict):
        return " ".join(f"{k}:{v}" for k, v in value.items()) or "none"
    return str(value)


def markdown(rows: list[Row], columns: list[tuple[str, str]]) -> str:
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(field)) for field, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def find(rows: list[Row], name: str, clients: int | None = None) -> Row | None:
    return next((r for r in rows if r["scenario"] == name and (clients is None or r["clients"] == clients)), None)
