"""Cancel a job: a queued job never runs, a running one stops at its next token. Idempotent."""

import time

from redis.asyncio import Redis

from shared import events, names
from shared.jobs import Status
from shared.scripts import EMIT
from shared.settings import Settings


async def cancel_job(
    redis: Redis, settings: Settings, job_id: str, model: str | None, lane: str | None
) -> str:
    """Returns the job's status after the request."""
    if model is None or lane is None:
        stored = await redis.hmget(names.job_key(job_id), ["model", "lane"])
        if stored[0] is None:
            return "unknown"
        model, lane = stored[0].decode(), stored[1].decode()
    event = events.error(499, "invalid_request_error", "cancelled", "The job was cancelled.")
    keys = [
        names.job_key(job_id),
        names.events_key(job_id),
        names.live_channel(job_id),
        names.cancel_key(job_id),
    ]
    args = [event, events.ERROR, "", Status.CANCELLED.value, settings.stream_maxlen, settings.result_ttl]
    args += [time.time(), Status.QUEUED.value]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(names.cancel_key(job_id), 1, ex=settings.result_ttl)
        await redis.register_script(EMIT)(keys=keys, args=args, client=pipe)
        pipe.lrem(names.rq_queue_key(model, lane), 1, job_id)
        pipe.hget(names.job_key(job_id), "status")
        results = await pipe.execute()
    if results[2]:
        await redis.hset(names.rq_job_key(job_id), "status", "canceled")
    status = results[3]
    return status.decode() if status else "unknown"
