"""The fleet's capacity as every reader in the API counts it: a model's live workers, and the wait ahead.

A worker is live while its registry score (an expiry time it keeps pushing forward) is in the future.
The Lua scripts count the same way (shared/scripts.py).
"""

import time
from typing import Any

from shared import names

RECENT_JOBS = 50  # job durations the wait estimate averages
UNKNOWN_JOB_SECONDS = 2.0  # the guess before any job has finished


def live_workers(client: Any, model: str) -> Any:
    """Count the live workers (queued on a pipeline, or awaitable on a client)."""
    return client.zcount(names.model_workers_key(model), time.time(), "+inf")


def live_worker_names(client: Any, model: str) -> Any:
    return client.zrangebyscore(names.model_workers_key(model), time.time(), "+inf")


def recent_durations(client: Any, model: str) -> Any:
    return client.lrange(names.job_durations_key(model), 0, RECENT_JOBS - 1)


def wait_seconds(jobs: int, durations: list[Any], workers: Any) -> float:
    """How long `jobs` take to drain: jobs x recent mean job time / live workers."""
    mean = sum(float(d) for d in durations) / len(durations) if durations else UNKNOWN_JOB_SECONDS
    return jobs * mean / max(1, int(workers))
