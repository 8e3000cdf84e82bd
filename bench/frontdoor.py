"""Front-door capacity: how many requests per second the API admits or refuses, with no worker attached.

The API runs pinned to core 0; Redis and the load generator share core 1. A fake worker registration
makes the model look live, so admission does its full work: validate, check the model, enqueue.
"""

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from redis import Redis

from bench.config import Workload
from bench.procs import RssSampler
from bench.stack import private_redis, running_llamaq
from shared import names, rqcontract

API_CPU, LOAD_CPU = "0", "1"
# Far-future expiry: the fake worker never looks stale during the run.
FAKE_WORKER, FAR_FUTURE = "bench-fake-worker", 4_102_444_800


def pretend_live(redis: Redis, model: str) -> None:
    """Register a worker that does not exist, and fill the interactive lane so its limit of 1 refuses."""
    redis.zadd(names.model_workers_key(model), {FAKE_WORKER: FAR_FUTURE})
    redis.hset(names.models_key(), model, int(time.time()))
    redis.rpush(rqcontract.queue_key(model, names.INTERACTIVE), "job_bench_placeholder")


def scenarios(workload: Workload, model: str) -> list[tuple[str, str, bytes]]:
    """(name, path, body): a trivial GET as the ceiling, background admits (202), interactive refusals (429)."""
    chat = {"model": model, "messages": workload.messages(), "max_tokens": workload.max_tokens}
    return [
        ("GET /health/live (ceiling)", "/health/live", b""),
        ("POST /v1/jobs (admit, 202)", "/v1/jobs", orjson.dumps({"endpoint": "/v1/chat/completions", "body": chat})),
        ("POST /v1/chat/completions (queue full, 429)", "/v1/chat/completions", orjson.dumps(chat)),
    ]


def blast(url: str, body: bytes, workload: Workload, scratch: Path, server_pid: int) -> dict[str, Any]:
    body_file = scratch / "body.json"
    body_file.write_bytes(body)
    args = [sys.executable, "-m", "bench.loadgen", url, str(body_file), "--server-pid", str(server_pid)]
    args += ["--connections", str(workload.admission_connections), "--seconds", str(workload.admission_seconds)]
    args += ["--warmup", str(min(1.0, workload.admission_seconds / 2))]
    done = subprocess.run(["taskset", "-c", LOAD_CPU, *args], capture_output=True, check=True, timeout=120)
    return dict(orjson.loads(done.stdout))


def _per_core(result: dict[str, Any]) -> dict[str, float | None]:
    """Near 1.0 API cores, the API's core was the limit; well below, it was starved or the load generator was."""
    cores = result.pop("server_cores", None)
    return {"api_cores": cores, "rps_per_core": result["rps"] / cores if cores else None}


def run_frontdoor(workload: Workload, model: str, scratch: Path) -> list[dict[str, Any]]:
    rows = []
    with (
        private_redis(scratch / "redis-frontdoor", cpus=LOAD_CPU) as redis,
        running_llamaq(
            redis.url, scratch / "logs-frontdoor", model, workers=0, api_cpus=API_CPU,
            max_queue_depth="1", max_batch_queue_depth="100000000",
        ) as stack,
    ):  # fmt: skip
        pretend_live(stack.redis, model)
        for name, path, body in scenarios(workload, model):
            with RssSampler({"api": [stack.api.pid]}) as rss:
                result = blast(stack.base_url + path, body, workload, scratch, stack.api.pid)
            rows.append({"scenario": name, **result, "api_rss_mb": rss.peak_mb["api"]} | _per_core(result))
    return rows
