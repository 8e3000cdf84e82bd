"""Memory probes on a running llamaq: a worker over sequential requests, the API over a burst, Redis per job."""

import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
from redis import Redis

from bench.client import run_load
from bench.config import Workload
from bench.procs import RssSampler
from bench.stack import Llamaq
from bench.stats import Stream

Row = dict[str, Any]
MB = 1e6
DASHBOARD_KEY = "bench-dashboard-key"
# Records a job leaves: llamaq's hash, replay stream and heartbeat key; RQ's job hash, result stream, executions.
JOB_PATTERNS = ("llamaq:job:*", "rq:job:*", "rq:results:*", "rq:execution*")
JOB_ID = re.compile(r"job_[0-9a-f]{32}(:[0-9a-f]{32}$)?")


@dataclass(frozen=True)
class Plan:
    """How much traffic each probe sends; `result_ttl` is shortened only so expiry can be watched.

    A job's record lives `result_ttl` from its enqueue, so it must outlast the longest queue wait plus run.
    """

    requests: int = 20
    max_tokens: int = 96
    burst_clients: int = 32
    burst_tokens: int = 16
    result_ttl: int = 60


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss / MB)


def anon_mb(pid: int) -> float:
    """RSS without file-backed pages: the mapped GGUF and libraries are page cache that workers on a node share.

    Not USS, which counts a file page as private only while no other process maps it: it changes with
    whatever else runs on the box.
    """
    info = psutil.Process(pid).memory_info()
    return float((info.rss - info.shared) / MB)


def used_memory(redis: Redis) -> int:
    """Redis memory without client buffers: connections (the API's pool, this probe's own replies) come and go."""
    info = redis.info("memory")
    return int(info["used_memory"]) - int(info.get("mem_clients_normal", 0))


def _chat(stack: Llamaq, max_tokens: int, clients: int, per_client: int) -> list[Stream]:
    body = Workload(max_tokens=max_tokens).openai_body(stack.model, sampler_extras=False)
    streams, _ = run_load(f"{stack.base_url}/v1/chat/completions", body, clients, per_client)
    return streams


def _failed(streams: list[Stream]) -> int:
    return sum(not stream.ok for stream in streams)


def probe_worker(stack: Llamaq, plan: Plan) -> tuple[Row, Row]:
    """The worker's RSS loaded and warm, at peak and after `plan.requests` requests; Redis bytes per finished job."""
    pid = stack.workers[0].pid
    idle = rss_mb(pid)
    empty = used_memory(stack.redis)
    with RssSampler({"worker": [pid]}) as sampler:
        # The first job also creates what every later job shares (metrics fields, duration list): not per job.
        warm = _chat(stack, plan.max_tokens, 1, 1)
        before = used_memory(stack.redis)
        streams = _chat(stack, plan.max_tokens, 1, plan.requests)
        after = used_memory(stack.redis)
    worker = {"idle_mb": idle, "peak_mb": sampler.peak_mb["worker"], "after_mb": rss_mb(pid)}
    worker |= {"anon_mb": anon_mb(pid), "requests": len(warm + streams), "failed": _failed(warm + streams)}
    redis = _per_job(streams, after - before, stack.redis) | {"empty": empty}
    return worker, redis


def probe_api(stack: Llamaq, plan: Plan, idle: float) -> tuple[Row, Row]:
    """The API's RSS over a burst of concurrent streams plus dashboard views (`idle`: before any traffic); and
    Redis bytes per finished job of the burst's shorter length."""
    pid = stack.api.pid
    with RssSampler({"api": [pid]}) as sampler:
        for path in ("/dashboard/", "/dashboard/0/data/queues.json", "/dashboard/0/data/workers.json"):
            httpx.get(f"{stack.base_url}{path}", auth=("ops", DASHBOARD_KEY), timeout=30).raise_for_status()
        before = used_memory(stack.redis)
        streams = _chat(stack, plan.burst_tokens, plan.burst_clients, 1)
        after = used_memory(stack.redis)
    row = {"idle_mb": idle, "peak_mb": sampler.peak_mb["api"], "after_mb": rss_mb(pid), "anon_mb": anon_mb(pid)}
    return row | {"requests": len(streams), "failed": _failed(streams)}, _per_job(streams, after - before, stack.redis)


def _per_job(streams: list[Stream], grew: int, redis: Redis) -> Row:
    """Per finished job: used_memory's growth, and what its records take by MEMORY USAGE (free of Redis's noise)."""
    jobs, tokens = len(streams), sum(stream.tokens for stream in streams)
    held, records = records_held(redis)
    row: Row = {"jobs": jobs, "failed": _failed(streams), "tokens_per_job": tokens / jobs if jobs else None}
    row |= {"kb_per_job": grew / 1000 / jobs if jobs else None}
    row["records_kb_per_job"] = sum(held.values()) / 1000 / records if records else None
    return row | {"records_kb_by_key": {kind: size / 1000 / max(1, records) for kind, size in held.items()}}


def records_held(redis: Redis) -> tuple[dict[str, int], int]:
    """Bytes job records take (MEMORY USAGE) by kind of key (`llamaq:job:<id>:events`...), and how many jobs."""
    held: dict[str, int] = {}
    jobs = 0
    for pattern in JOB_PATTERNS:
        for key in map(bytes.decode, redis.scan_iter(match=pattern, count=1000)):
            kind = JOB_ID.sub("<id>", key)
            held[kind] = held.get(kind, 0) + int(redis.memory_usage(key, samples=0) or 0)
            jobs += kind == "llamaq:job:<id>"
    return held, jobs


def job_records(redis: Redis) -> int:
    return sum(1 for pattern in JOB_PATTERNS for _ in redis.scan_iter(match=pattern, count=1000))


def watch_expiry(redis: Redis, empty: int, plan: Plan) -> Row:
    """Follow used_memory above `empty` (before the first job) until every job record has expired, or a deadline."""
    started = time.monotonic()
    deadline = started + plan.result_ttl + 30
    timeline: list[dict[str, float]] = []
    while True:
        left = job_records(redis)
        elapsed = time.monotonic() - started
        timeline.append({"s": round(elapsed, 1), "kb": (used_memory(redis) - empty) / 1000, "records": left})
        if left == 0 or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    first, final = timeline[0], timeline[-1]
    row: Row = {"kb_after_jobs": first["kb"], "kb_after_expiry": final["kb"], "kb_freed": first["kb"] - final["kb"]}
    row |= {"records_left": final["records"], "expired_after_s": final["s"] if final["records"] == 0 else None}
    return row | {"timeline": timeline}
