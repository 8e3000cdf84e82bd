"""Stop a job: a queued job ends at once and never runs; a running one stops at its next token.

Idempotent: a finished job is left as it is. Also used to expire the leftover lines of a batch.
"""

from redis.asyncio import Redis

from api import rqrecords
from shared import events, names
from shared.emission import emission
from shared.rqcontract import JobStatus
from shared.scripts import EMIT, EmitOutcome
from shared.settings import Settings
from shared.states import Status

CANCELLED = events.StopReason(499, "cancelled", "The job was cancelled.")


async def cancel_job(
    redis: Redis,
    settings: Settings,
    job_id: str,
    model: str | None,
    lane: str | None,
    reason: events.StopReason = CANCELLED,
    terminal: Status = Status.CANCELLED,
) -> str:
    """Returns the job's status after the request (`unknown` when there is no such job)."""
    if model is None or lane is None:
        stored = await redis.hmget(names.job_key(job_id), ["model", "lane"])
        if stored[0] is None:
            return "unknown"
        model, lane = stored[0].decode(), stored[1].decode()
    keys, args = emission(settings, job_id, reason.event(), terminal=terminal, expect=Status.QUEUED)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(names.cancel_key(job_id), 1, ex=settings.result_ttl)
        await redis.register_script(EMIT)(keys=keys, args=args, client=pipe)
        rqrecords.unqueue(pipe, model, lane, job_id)
        pipe.hget(names.job_key(job_id), "status")
        results = await pipe.execute()
    if results[2]:
        await rqrecords.set_status(redis, job_id, JobStatus.CANCELED)
    current = results[3]
    return current.decode() if current else "unknown"


async def fail_lost(redis: Redis, settings: Settings, job_id: str, attempt: int) -> bool:
    """End a running job whose worker died (its `attempt` still current) with `worker_lost`."""
    message = "The worker generating this job stopped before it finished; the result is incomplete. Please retry."
    event = events.Failed.of(503, "server_error", "worker_lost", message)
    keys, args = emission(settings, job_id, event, attempt=attempt, terminal=Status.FAILED, expect=Status.IN_PROGRESS)
    return EmitOutcome(int(await redis.register_script(EMIT)(keys=keys, args=args))) is not EmitOutcome.REFUSED
