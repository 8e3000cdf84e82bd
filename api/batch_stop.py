"""Ending a batch early: cancelled by its owner, or past its completion window (its lines expire).

Queued lines end at once and never run; running ones stop at their next token. The batch finishes
(`cancelled`) once every line has ended, in the same atomic step as the last line's terminal event.
"""

import time
from typing import Any

from redis.asyncio import Redis

from api.cancel import CANCELLED, cancel_job
from api.files import CHUNK_LINES
from shared import names
from shared.events import StopReason
from shared.scripts import SET_IF_STATUS, SETTLE_BATCH
from shared.settings import Settings
from shared.states import BatchStatus, Status
from shared.webhooks import EventType

EXPIRED = StopReason(
    499, "batch_expired", "This request could not be executed before the batch's completion window ended."
)


async def stop_lines(redis: Redis, settings: Settings, batch_id: str, reason: StopReason | None = None) -> None:
    """Stop every line still pending: cancelled, or expired with `reason`."""
    terminal = Status.EXPIRED if reason else Status.CANCELLED
    reason = reason or CANCELLED
    start = 0
    while ids := await redis.lrange(names.batch_lines_key(batch_id, "jobs"), start, start + CHUNK_LINES - 1):
        start += len(ids)
        for job_id in ids:
            await cancel_job(
                redis, settings, job_id.decode(), None, None, reason=reason or CANCELLED, terminal=terminal
            )
    enqueued = int(await redis.hget(names.batch_key(batch_id), "enqueued") or 0)
    await redis.hset(names.batch_key(batch_id), "total", enqueued)
    await settle(redis, batch_id)
    await redis.srem(names.batches_active_key(), batch_id)


async def settle(redis: Redis, batch_id: str) -> None:
    """Finish the batch if all its lines have ended (for when the last ended before `total` was final)."""
    await redis.register_script(SETTLE_BATCH)(keys=[names.batch_key(batch_id)], args=[int(time.time())])


async def set_if_status(redis: Redis, batch_id: str, expected: BatchStatus, event: str, fields: dict[str, Any]) -> bool:
    """Set `fields` while the batch is `expected`, announcing `event` ('' for none) in the same step."""
    pairs = [item for pair in fields.items() for item in pair]
    args = [expected.value, event, batch_id, int(time.time()), *pairs]
    return bool(await redis.register_script(SET_IF_STATUS)(keys=[names.batch_key(batch_id)], args=args))


async def request_cancel(redis: Redis, batch_id: str) -> bool:
    """Move a running batch to `cancelling`; False when it already ended or is cancelling.

    Set only from the state just read, so a batch that ended meanwhile keeps its end and its one event.
    """
    for _ in range(3):  # validating -> in_progress may happen between the read and the write
        stored = await redis.hget(names.batch_key(batch_id), "status")
        status = BatchStatus(stored.decode()) if stored else BatchStatus.COMPLETED
        if status.ended or status is BatchStatus.CANCELLING:
            return False
        fields = {"status": BatchStatus.CANCELLING.value, "cancelling_at": int(time.time())}
        if await set_if_status(redis, batch_id, status, "", fields):
            return True
    return False


async def mark_expired(redis: Redis) -> list[str]:
    """Batches still running past their completion window, now marked `expired`; their lines are left to stop."""
    now, due = time.time(), []
    for raw in await redis.smembers(names.batches_active_key()):
        batch_id = raw.decode()
        values = await redis.hmget(names.batch_key(batch_id), ["status", "expires_at"])
        running = values[0] is not None and BatchStatus(values[0].decode()).running
        if running and values[1] and float(values[1]) <= now:
            fields = {"status": BatchStatus.EXPIRED.value, "expired_at": int(now)}
            # Only from the state just read: a batch that finished meanwhile keeps its end (and its one event).
            status = BatchStatus(values[0].decode())
            if await set_if_status(redis, batch_id, status, EventType.BATCH_EXPIRED, fields):
                due.append(batch_id)
    return due
