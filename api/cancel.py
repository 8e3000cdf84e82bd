"""Stop a job: a queued job ends at once and never runs; a running one stops at its next token.

Idempotent: a finished job is left as it is. Also used to expire the leftover lines of a batch.
"""

from redis.asyncio import Redis

from shared import events, names
from shared.emission import emission
from shared.jobs import Status
from shared.scripts import EMIT
from shared.settings import Settings

CANCELLED = (499, "cancelled", "The job was cancelled.")


async def cancel_job(
    redis: Redis,
    settings: Settings,
    job_id: str,
    model: str | None,
    lane: str | None,
    reason: tuple[int, str, str] = CANCELLED,
    terminal: Status = Status.CANCELLED,
) -> str:
    """Returns the job's status after the request (`unknown` when there is no such job)."""
    if model is None or lane is None:
        stored = await redis.hmget(names.job_key(job_id), ["model", "lane"])
        if stored[0] is None:
            return "unknown"
        model, lane = stored[0].decode(), stored[1].decode()
    status, code, message = reason
    event = events.error(status, "invalid_request_error", code, message)
    keys, args = emission(settings, job_id, event, events.ERROR, terminal=terminal, expect=Status.QUEUED)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(names.cancel_key(job_id), 1, ex=settings.result_ttl)
        await redis.register_script(EMIT)(keys=keys, args=args, client=pipe)
        pipe.lrem(names.rq_queue_key(model, lane), 1, job_id)
        pipe.hget(names.job_key(job_id), "status")
        results = await pipe.execute()
    if results[2]:
        await redis.hset(names.rq_job_key(job_id), "status", "canceled")
    current = results[3]
    return current.decode() if current else "unknown"


async def fail_lost(redis: Redis, settings: Settings, job_id: str, attempt: int) -> bool:
    """End a running job whose worker died (its `attempt` still current) with `worker_lost`."""
    message = "The worker generating this job stopped before it finished; the result is incomplete. Please retry."
    event = events.error(503, "server_error", "worker_lost", message)
    keys, args = emission(
        settings, job_id, event, events.ERROR, attempt=attempt, terminal=Status.FAILED, expect=Status.IN_PROGRESS
    )
    return int(await redis.register_script(EMIT)(keys=keys, args=args)) >= 0
