"""The API's one door to RQ's own records (the contract is `shared/rqcontract.py`).

Admission writes a job's RQ hash and queue entry; job views, metrics and health read queue lengths
and places; cancellation and upkeep set RQ's status of a job they end or requeue, and find the jobs
RQ holds as popped or started. Nothing else in `api/` names an RQ key or status.
"""

from enum import Enum
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from rq.job import Job
from rq.utils import now

from shared import names, rqcontract
from shared.payload import JOB_DESCRIPTION, JOB_FUNCTION, JobPayload
from shared.rqcontract import JobStatus
from shared.settings import Settings

# RQ builds its job records with a client it never uses here; all I/O goes through the caller's Redis.
_CODEC = SyncRedis()


def job_record(payload: JobPayload, settings: Settings) -> dict[str, Any]:
    """RQ's hash for a queued job running `JOB_FUNCTION(payload)`, as RQ's own enqueue would write it."""
    job = Job.create(
        JOB_FUNCTION,
        args=[payload.model_dump(mode="json", exclude_none=True)],
        connection=_CODEC,
        serializer=rqcontract.JSONSerializer,
        id=payload.id,
        description=JOB_DESCRIPTION,
        timeout=settings.job_timeout + 30,
        result_ttl=settings.result_ttl,
        failure_ttl=settings.result_ttl,
    )
    job.origin = names.queue_name(payload.model, payload.lane)
    job.enqueued_at = now()
    fields = job.to_dict()
    fields["status"] = JobStatus.QUEUED  # as RQ's enqueue sets it; `Job.create` leaves it unset
    return {key: value.value if isinstance(value, Enum) else value for key, value in fields.items()}


def admit_keys(payload: JobPayload) -> list[str]:
    """RQ's keys of the ADMIT script: the lane's list, the job's hash, the set of queues."""
    return [rqcontract.queue_key(payload.model, payload.lane), rqcontract.job_key(payload.id), rqcontract.QUEUES_SET]


def queue_length(pipe: Pipeline, model: str, lane: str) -> None:
    """Queue on `pipe`: how many jobs wait in the lane."""
    pipe.llen(rqcontract.queue_key(model, lane))


async def queue_lengths(redis: Redis, model: str) -> dict[str, int]:
    """How many jobs wait in each of the model's lanes."""
    async with redis.pipeline(transaction=False) as pipe:
        for lane in names.LANES:
            queue_length(pipe, model, lane)
        lengths = await pipe.execute()
    return {lane: int(length) for lane, length in zip(names.LANES, lengths, strict=True)}


def queue_place(pipe: Pipeline, model: str, lane: str, job_id: str) -> None:
    """Queue on `pipe`: the job's place in its lane (0 is next), or None when it no longer waits."""
    pipe.lpos(rqcontract.queue_key(model, lane), job_id)


def queue_head(pipe: Pipeline, model: str, lane: str) -> None:
    """Queue on `pipe`: the id of the job that waits longest, or None."""
    pipe.lindex(rqcontract.queue_key(model, lane), 0)


def unqueue(pipe: Pipeline, model: str, lane: str, job_id: str) -> None:
    """Queue on `pipe`: take the job out of its lane (1 when it was there)."""
    pipe.lrem(rqcontract.queue_key(model, lane), 1, job_id)


async def enqueued_at(redis: Redis, job_id: str) -> bytes | None:
    """RQ's `enqueued_at` stamp of the job (ISO 8601, UTC)."""
    stamp: bytes | None = await redis.hget(rqcontract.job_key(job_id), "enqueued_at")
    return stamp


async def set_status(redis: Redis, job_id: str, status: JobStatus) -> None:
    """RQ's status of a job llamaq ended or requeued, so RQ's registries and the dashboard agree."""
    await redis.hset(rqcontract.job_key(job_id), "status", status.value)


async def started_job_ids(redis: Redis, model: str, lane: str) -> list[str]:
    """Jobs RQ holds as started in the lane."""
    return [
        rqcontract.started_job_id(member) for member in await redis.zrange(rqcontract.started_key(model, lane), 0, -1)
    ]


async def popped_job_ids(redis: Redis, model: str, lane: str) -> list[str]:
    """Jobs a worker popped from the lane and RQ has not yet started."""
    return [raw.decode() for raw in await redis.lrange(rqcontract.intermediate_key(model, lane), 0, -1)]


def reap_keys(model: str, lane: str, job_id: str) -> list[str]:
    """RQ's keys of the REAP script: the lane's list, its started registry, the job's hash."""
    return [rqcontract.queue_key(model, lane), rqcontract.started_key(model, lane), rqcontract.job_key(job_id)]


def rescue_keys(model: str, lane: str, job_id: str) -> list[str]:
    """RQ's keys of the RESCUE script: the lane's list, intermediate list, started registry, the job's hash."""
    return [
        rqcontract.queue_key(model, lane), rqcontract.intermediate_key(model, lane),
        rqcontract.started_key(model, lane), rqcontract.job_key(job_id),
    ]  # fmt: skip
