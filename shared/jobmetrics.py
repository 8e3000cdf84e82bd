"""Job figures as counters in one Redis hash: workers add to them, the API renders them at scrape time.

Workers may run on nodes Prometheus cannot reach, so they keep no metrics endpoint of their own: each
finished job adds to `names.metrics_key()` in one pipelined round trip (never per token), and every
API instance turns the hash into Prometheus families. Histograms are stored as per-bucket counters.

Fields: `<model>|<lane>|jobs|<state>` (written by the EMIT script), `<model>|<lane>|c|<counter>`,
`<model>|<lane>|h|<histogram>|<le>|sum|count`.
"""

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from shared import names

HISTOGRAMS: dict[str, tuple[str, tuple[float, ...]]] = {
    "queue_wait_seconds": (
        "Seconds a job waited in its queue before a worker took it.",
        (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    ),
    "time_to_first_token_seconds": (
        "Seconds from admission to the first generated token (queue wait included).",
        (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    ),
    "job_latency_seconds": (
        "Seconds from admission to the end of the job (end-to-end latency).",
        (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
    ),
    "decode_tokens_per_second": (
        "Decode speed of each job: completion tokens after the first, per second.",
        (1, 2, 5, 10, 20, 30, 40, 50, 60, 80, 100, 150, 200, 400),
    ),
}
COUNTERS = {
    "tokens_generated": "Completion tokens generated.",
    "prompt_tokens": "Prompt tokens of the jobs, cached ones included.",
    "prompt_tokens_cached": "Prompt tokens a slot's prefix cache already held: not evaluated again.",
}


def _bucket(value: float, bounds: tuple[float, ...]) -> str:
    return next((f"{bound:g}" for bound in bounds if value <= bound), "+Inf")


@dataclass
class JobFigures:
    """What one finished job adds. Timings are None when the job never reached that point."""

    model: str
    lane: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    cached_tokens: int = 0


def record(pipe: Any, figures: JobFigures) -> None:
    """Queue the HINCRBY commands of one job on `pipe` (a redis-py pipeline, sync or async)."""
    key, head = names.metrics_key(), f"{figures.model}|{figures.lane}"
    pipe.hincrby(key, f"{head}|c|tokens_generated", figures.completion_tokens)
    pipe.hincrby(key, f"{head}|c|prompt_tokens", figures.prompt_tokens)
    pipe.hincrby(key, f"{head}|c|prompt_tokens_cached", figures.cached_tokens)
    for name, value in figures.timings.items():
        if name not in HISTOGRAMS or not math.isfinite(value) or value < 0:
            continue
        pipe.hincrby(key, f"{head}|h|{name}|{_bucket(value, HISTOGRAMS[name][1])}", 1)
        pipe.hincrby(key, f"{head}|h|{name}|count", 1)
        pipe.hincrbyfloat(key, f"{head}|h|{name}|sum", value)


def families(raw: dict[bytes, bytes]) -> Iterator[Metric]:
    """Prometheus families from the hash's contents (HGETALL)."""
    jobs = CounterMetricFamily("llamaq_jobs", "Jobs by terminal state.", labels=["model", "lane", "state"])
    counters = {
        name: CounterMetricFamily(f"llamaq_{name}", text, labels=["model", "lane"]) for name, text in COUNTERS.items()
    }
    hist: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for raw_field, raw_value in raw.items():
        text, value = raw_field.decode(), float(raw_value)
        wide = text.rsplit("|", 4)  # model | lane | h | histogram | le, sum or count
        if len(wide) == 5 and wide[2] == "h":
            hist[(wide[3], wide[0], wide[1])][wide[4]] = value
            continue
        parts = text.rsplit("|", 3)  # model | lane | jobs or c | state or counter
        if len(parts) == 4 and parts[2] == "jobs":
            jobs.add_metric([parts[0], parts[1], parts[3]], value)
        elif len(parts) == 4 and parts[2] == "c" and parts[3] in counters:
            counters[parts[3]].add_metric([parts[0], parts[1]], value)
    yield jobs
    yield from counters.values()
    yield from _histograms(hist)


def _histograms(hist: dict[tuple[str, str, str], dict[str, float]]) -> Iterator[Metric]:
    for name, (text, bounds) in HISTOGRAMS.items():
        family = HistogramMetricFamily(f"llamaq_{name}", text, labels=["model", "lane"])
        for (hist_name, model, lane), values in sorted(hist.items()):
            if hist_name != name:
                continue
            running, buckets = 0.0, []
            for le in [*(f"{bound:g}" for bound in bounds), "+Inf"]:
                running += values.get(le, 0.0)
                buckets.append((le, running))
            family.add_metric([model, lane], buckets, values.get("sum", 0.0))
        yield family
