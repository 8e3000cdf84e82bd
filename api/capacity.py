"""The fleet's capacity as every reader in the API counts it: a model's live workers and slots, and the wait ahead.

A worker, and each of its slots, is live while its registry score (an expiry time the worker keeps
pushing forward) is in the future. Capacity is workers x slots: the jobs the model generates at once.
"""

import time
from dataclasses import dataclass
from typing import Any

from shared import names

RECENT_JOBS = 50  # job durations the wait estimate averages
UNKNOWN_JOB_SECONDS = 2.0  # the guess before any job has finished


def live_workers(client: Any, model: str) -> Any:
    """Count the live workers (queued on a pipeline, or awaitable on a client)."""
    return client.zcount(names.model_workers_key(model), time.time(), "+inf")


def live_slots(client: Any, model: str) -> Any:
    """Count the live slots of all the model's workers (queued on a pipeline, or awaitable on a client)."""
    return client.zcount(names.model_slots_key(model), time.time(), "+inf")


def live_worker_names(client: Any, model: str) -> Any:
    return client.zrangebyscore(names.model_workers_key(model), time.time(), "+inf")


def recent_durations(client: Any, model: str) -> Any:
    return client.lrange(names.job_durations_key(model), 0, RECENT_JOBS - 1)


def wait_seconds(jobs: int, durations: list[Any], slots: Any) -> float:
    """How long `jobs` take to drain: jobs x recent mean job time / live slots."""
    mean = sum(float(d) for d in durations) / len(durations) if durations else UNKNOWN_JOB_SECONDS
    return jobs * mean / max(1, int(slots))


@dataclass(frozen=True)
class Load:
    """What a model's live workers are doing: workers, those generating, slots, slots generating."""

    workers: int
    busy_workers: int
    slots: int
    busy_slots: int


async def load(redis: Any, model: str) -> Load:
    """The model's live workers and slots and how many are busy, from each worker's own record."""
    workers = await live_worker_names(redis, model)
    async with redis.pipeline(transaction=False) as pipe:
        for worker in workers:
            pipe.hmget(names.worker_key(worker.decode()), ["state", "slots", "slots_busy"])
        rows = await pipe.execute()
    rows = [row for row in rows if row[0] is not None]
    return Load(
        workers=len(workers),
        busy_workers=sum(1 for row in rows if row[0] == b"busy"),
        slots=sum(int(row[1] or 1) for row in rows),
        busy_slots=sum(int(row[2] or (row[0] == b"busy")) for row in rows),
    )
