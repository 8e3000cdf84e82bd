"""Runs a batch in the background: validate every line, enqueue them on the batch lane, cancel, expire.

Every step is restartable: line jobs are enqueued under idempotency keys, so an API that restarts
resumes its batches (`resume_all`) without running a line twice. What a valid line is lives in
`api/batch_check.py`; how a batch ends early, in `api/batch_stop.py`.
"""

import asyncio
import logging
import time
from typing import Any

import orjson
from redis.asyncio import Redis

from api import batch_check, batch_stop
from api.admission import Admission
from api.payloads import payload_for
from shared import names
from shared.errors import LlamaqError, NoWorkers, QueueFull
from shared.events import StopReason
from shared.payload import JobPayload, new_job_id
from shared.settings import Settings
from shared.states import BatchStatus
from shared.webhooks import EventType

logger = logging.getLogger(__name__)


class BatchRunner:
    def __init__(self, redis: Redis, settings: Settings, admission: Admission) -> None:
        self.redis = redis
        self.settings = settings
        self.admission = admission
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, batch_id: str, action: str = "run") -> None:
        work = self.run(batch_id) if action == "run" else self.cancel(batch_id)
        task = asyncio.create_task(work, name=f"llamaq-batch-{action}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def resume_all(self) -> None:
        for raw in await self.redis.smembers(names.batches_active_key()):
            stored = await self.redis.hget(names.batch_key(raw.decode()), "status")
            if stored is None:
                await self.redis.srem(names.batches_active_key(), raw)
                continue
            status = BatchStatus(stored.decode())
            if status.running:
                self.start(raw.decode())
            elif status is BatchStatus.CANCELLING:
                self.start(raw.decode(), "cancel")

    async def run(self, batch_id: str) -> None:
        try:
            record = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(names.batch_key(batch_id))).items()}
            if record.get("status") == BatchStatus.VALIDATING and not await self._validate(batch_id, record):
                return
            await self._enqueue_all(batch_id, record)
        except Exception:
            logger.exception("batch run failed", extra={"batch_id": batch_id})

    async def _validate(self, batch_id: str, record: dict[str, str]) -> bool:
        total, errors = await batch_check.problems(self.redis, self.settings, self.admission, record)
        now = int(time.time())
        if errors:
            failed = {"status": BatchStatus.FAILED.value, "failed_at": now, "errors": orjson.dumps(errors)}
            await self._set_if_validating(batch_id, EventType.BATCH_FAILED, **failed)
            await self.redis.srem(names.batches_active_key(), batch_id)
            return False
        running = {"status": BatchStatus.IN_PROGRESS.value, "in_progress_at": now, "total": total}
        return await self._set_if_validating(batch_id, "", **running)

    async def _set_if_validating(self, batch_id: str, event: str, **fields: Any) -> bool:
        """Leave validation unless the batch was cancelled meanwhile (announcing `event`, if any, with it)."""
        return await batch_stop.set_if_status(self.redis, batch_id, BatchStatus.VALIDATING, event, fields)

    async def _enqueue_all(self, batch_id: str, record: dict[str, str]) -> None:
        start = int(await self.redis.hget(names.batch_key(batch_id), "enqueued") or 0)
        async for index, line in batch_check.file_lines(self.redis, record["input_file_id"], start):
            if (await self.redis.hget(names.batch_key(batch_id), "status")) != BatchStatus.IN_PROGRESS.encode():
                return
            request = orjson.loads(line)
            try:
                payload = payload_for(record["endpoint"], request["body"], self.settings, names.BATCH, "body")
                extra = {
                    "batch": batch_id,
                    "custom_id_json": orjson.dumps(request["custom_id"]),
                    "endpoint": record["endpoint"],
                }
                job_id = await self._admit(payload, record, extra, f"{batch_id}:{index}")
            except LlamaqError as exc:
                # Validated lines rarely get here (the model's context shrank meanwhile); the line still ends.
                await self._fail_line(batch_id, request["custom_id"], exc)
                continue
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(names.batch_lines_key(batch_id, "jobs"), job_id)
                pipe.expire(names.batch_lines_key(batch_id, "jobs"), await self.redis.ttl(names.batch_key(batch_id)))
                pipe.hincrby(names.batch_key(batch_id), "enqueued", 1)
                await pipe.execute()

    async def _fail_line(self, batch_id: str, custom_id: str, exc: LlamaqError) -> None:
        """Write a line that could not be enqueued to the error file, counted in the same step."""
        request_id = new_job_id()
        response = {"status_code": exc.status, "request_id": request_id, "body": exc.to_dict()}
        line = orjson.dumps(
            {"id": f"batch_req_{request_id}", "custom_id": custom_id, "response": response, "error": None}
        )
        key, errors = names.batch_key(batch_id), names.batch_lines_key(batch_id, "errors")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(errors, line)
            pipe.expire(errors, await self.redis.ttl(key))
            pipe.hincrby(key, "failed", 1)
            pipe.hincrby(key, "failed_bytes", len(line) + 1)
            pipe.hincrby(key, "enqueued", 1)
            await pipe.execute()
        await batch_stop.settle(self.redis, batch_id)

    async def _admit(self, payload: JobPayload, record: dict[str, str], extra: dict[str, Any], key: str) -> str:
        """Enqueue one line, waiting (never failing the line) while the lane is full or no worker is up."""
        while True:
            try:
                admitted = await self.admission.enqueue(payload, record["owner"], extra, key)
                return admitted.job_id
            except QueueFull as full:
                await asyncio.sleep(min(full.retry_after, 5))
            except NoWorkers:
                await asyncio.sleep(1)

    async def cancel(self, batch_id: str, reason: StopReason | None = None) -> None:
        """Stop every line still pending: queued ones end now, running ones at their next token."""
        await batch_stop.stop_lines(self.redis, self.settings, batch_id, reason)

    async def expire_due(self) -> None:
        """Batches past their completion window: leftover lines end as expired."""
        for batch_id in await batch_stop.mark_expired(self.redis):
            await self.cancel(batch_id, batch_stop.EXPIRED)
