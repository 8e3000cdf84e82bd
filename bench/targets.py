"""The issue's targets, checked against a merged result: each one met, missed, or not measured."""

from typing import Any

from bench.contests import LLAMAQ_1, LLAMAQ_2, PEER, peer_name
from bench.report import Row, find

API_RSS_LIMIT_MB = 120.0
WORKER_RSS_HEADROOM_MB = 150.0


def _get(row: Row | None, field: str) -> Any:
    return None if row is None else row.get(field)


def _check(target: str, measured: float | None, goal: str, ok: bool | None) -> Row:
    met = "n/a" if ok is None else ("yes" if ok else "NO")
    return {"target": target, "measured": measured, "goal": goal, "met": met}


def _at_least(target: str, measured: float | None, limit: float, goal: str) -> Row:
    return _check(target, measured, goal, None if measured is None else measured >= limit)


def _at_most(target: str, measured: float | None, limit: float, goal: str) -> Row:
    return _check(target, measured, goal, None if measured is None else measured <= limit)


def targets(rows: list[Row], frontdoor: list[Row], model_mb: float, clients: int, threads: int) -> list[Row]:
    single = find(rows, LLAMAQ_1, 1)
    two = find(rows, LLAMAQ_2, clients)
    peer = find(rows, peer_name(2 * threads), clients)
    agg_two = _get(two, "agg_tok_s")
    vs_peer = agg_two / peer["agg_tok_s"] if agg_two and peer and peer.get("agg_tok_s") else None
    admitted = next((r for r in frontdoor if "202" in r["scenario"]), None)
    llamaq_rows = [r for r in rows if r["scenario"] in (LLAMAQ_1, LLAMAQ_2)]
    api_rss = [r["api_rss_mb"] for r in [*llamaq_rows, *frontdoor] if r.get("api_rss_mb")]
    worker_rss = [r["worker_rss_mb"] for r in llamaq_rows if r.get("worker_rss_mb")]
    return [
        _at_most("added TTFT p50 over raw (ms)", _get(single, "ttft_delta_ms"), 10.0, "<= 10"),
        _at_least("single-stream decode vs raw", _get(single, "decode_ratio"), 0.97, ">= 0.97"),
        _at_least(f"2 workers vs 1, aggregate at {clients} clients", _get(two, "agg_ratio"), 1.8, ">= 1.8"),
        _at_least(f"llamaq 2 workers vs {PEER} at {clients} clients", vs_peer, 1.0, ">= 1.0"),
        _at_least("admission (POST /v1/jobs) req/s", _get(admitted, "rps"), 1000.0, ">= 1000"),
        _at_most(
            "worker peak RSS (MB)",
            max(worker_rss, default=None),
            model_mb + WORKER_RSS_HEADROOM_MB,
            f"<= model {model_mb:.0f} + {WORKER_RSS_HEADROOM_MB:.0f}",
        ),
        _at_most("API peak RSS (MB)", max(api_rss, default=None), API_RSS_LIMIT_MB, f"<= {API_RSS_LIMIT_MB:.0f}"),
    ]
