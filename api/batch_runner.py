"""Runs a batch in the background: validate every line, enqueue them on the batch lane, cancel, expire.

Every step is restartable: line jobs are enqueued under idempotency keys, so an API that restarts
resumes its batches (`resume_all`) without running a line twice.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from redis.asyncio import Redis

from api.admission import Admission, check_fits
from api.cancel import cancel_job
from api.files import CHUNK_LINES
from api.payloads import payload_for
from shared import names
from shared.errors import LlamaqError, NoWorkers, QueueFull
from shared.jobs import JobPayload, Status, new_job_id
from shared.scripts import SET_IF_STATUS, SETTLE_BATCH
from shared.settings import Settings

logger = logging.getLogger(__name__)
MAX_REPORTED_ERRORS = 100
EXPIRED = (499, "batch_expired", "This request could not be executed before the batch's completion window ended.")


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
            status = await self.redis.hget(names.batch_key(raw.decode()), "status")
            if status is None:
                await self.redis.srem(names.batches_active_key(), raw)
            elif status in (b"validating", b"in_progress"):
                self.start(raw.decode())
            elif status == b"cancelling":
                self.start(raw.decode(), "cancel")

    async def run(self, batch_id: str) -> None:
        try:
            record = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(names.batch_key(batch_id))).items()}
            if record.get("status") == "validating" and not await self._validate(batch_id, record):
                return
            await self._enqueue_all(batch_id, record)
        except Exception:
            logger.exception("batch run failed", extra={"batch_id": batch_id})

    async def _lines(self, file_id: str, start: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        key = names.file_lines_key(file_id)
        while chunk := await self.redis.lrange(key, start, start + CHUNK_LINES - 1):
            for offset, line in enumerate(chunk):
                yield start + offset, line
            start += len(chunk)

    async def _validate(self, batch_id: str, record: dict[str, str]) -> bool:
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        known = {m.decode() for m in await self.redis.hkeys(names.models_key())}
        sizes: dict[str, list[Any]] = {}
        total = 0
        async for index, line in self._lines(record["input_file_id"]):
            total += 1
            problem = await self._check(line, record["endpoint"], seen, known, sizes)
            if problem and len(errors) < MAX_REPORTED_ERRORS:
                errors.append({**problem, "line": index + 1})
        if total == 0:
            errors.append({"code": "empty_file", "message": "The input file has no requests.", "param": None})
        elif total > self.settings.max_batch_lines:
            message = f"The input file has {total} requests; the limit is {self.settings.max_batch_lines}."
            errors.insert(0, {"code": "too_many_requests", "message": message, "param": None})
        now = int(time.time())
        if errors:
            await self._set_if_validating(batch_id, status="failed", failed_at=now, errors=orjson.dumps(errors))
            await self.redis.srem(names.batches_active_key(), batch_id)
            return False
        return await self._set_if_validating(batch_id, status="in_progress", in_progress_at=now, total=total)

    async def _check(
        self, line: bytes, endpoint: str, seen: set[str], known: set[str], sizes: dict[str, list[Any]]
    ) -> dict[str, Any] | None:
        """`_check_line`, then the size check; `sizes` keeps each model's size facts for the whole file."""
        checked = _check_line(line, endpoint, seen, known, self.settings)
        if isinstance(checked, dict):
            return checked
        if checked.model not in sizes:
            sizes[checked.model] = await self.admission.size_info(checked.model)
        # A prompt that cannot fit fails here, not at enqueue time where the line would have no job.
        try:
            check_fits(checked, sizes[checked.model])
        except LlamaqError as exc:
            return {"code": exc.code or "invalid_request", "message": exc.message, "param": f"body.{exc.param}"}
        return None

    async def _set_if_validating(self, batch_id: str, **fields: Any) -> bool:
        """Leave validation unless the batch was cancelled meanwhile."""
        args = ["validating", *[item for pair in fields.items() for item in pair]]
        return bool(await self.redis.register_script(SET_IF_STATUS)(keys=[names.batch_key(batch_id)], args=args))

    async def _enqueue_all(self, batch_id: str, record: dict[str, str]) -> None:
        start = int(await self.redis.hget(names.batch_key(batch_id), "enqueued") or 0)
        async for index, line in self._lines(record["input_file_id"], start):
            if (await self.redis.hget(names.batch_key(batch_id), "status")) != b"in_progress":
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
        await self.redis.register_script(SETTLE_BATCH)(keys=[key], args=[int(time.time())])

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

    async def cancel(self, batch_id: str, reason: tuple[int, str, str] | None = None) -> None:
        """Stop every line still pending: queued ones end now, running ones at their next token."""
        terminal = Status.EXPIRED if reason else Status.CANCELLED
        start = 0
        while ids := await self.redis.lrange(names.batch_lines_key(batch_id, "jobs"), start, start + CHUNK_LINES - 1):
            start += len(ids)
            for job_id in ids:
                args: dict[str, Any] = {"terminal": terminal, "reason": reason} if reason else {}
                await cancel_job(self.redis, self.settings, job_id.decode(), None, None, **args)
        enqueued = int(await self.redis.hget(names.batch_key(batch_id), "enqueued") or 0)
        await self.redis.hset(names.batch_key(batch_id), "total", enqueued)
        await self.redis.register_script(SETTLE_BATCH)(keys=[names.batch_key(batch_id)], args=[int(time.time())])
        await self.redis.srem(names.batches_active_key(), batch_id)

    async def expire_due(self) -> None:
        """Batches past their completion window: leftover lines end as expired."""
        now = time.time()
        for raw in await self.redis.smembers(names.batches_active_key()):
            values = await self.redis.hmget(names.batch_key(raw.decode()), ["status", "expires_at"])
            if values[0] in (b"validating", b"in_progress") and values[1] and float(values[1]) <= now:
                await self.redis.hset(
                    names.batch_key(raw.decode()), mapping={"status": "expired", "expired_at": int(now)}
                )
                await self.cancel(raw.decode(), EXPIRED)


def _check_line(
    line: bytes, endpoint: str, seen: set[str], known: set[str], settings: Settings
) -> dict[str, Any] | JobPayload:
    """What is wrong with one input line, as an OpenAI batch error, or the line's job payload."""
    try:
        request = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {"code": "invalid_json_line", "message": "This line is not valid JSON.", "param": None}
    if not isinstance(request, dict) or not isinstance(request.get("body"), dict):
        return {
            "code": "invalid_request",
            "message": "Each line needs an object with a 'body' object.",
            "param": "body",
        }
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 512:
        return {"code": "invalid_custom_id", "message": "custom_id must be a non-empty string.", "param": "custom_id"}
    if custom_id in seen:
        return {"code": "duplicate_custom_id", "message": f"Duplicate custom_id '{custom_id}'.", "param": "custom_id"}
    seen.add(custom_id)
    if request.get("method", "POST") != "POST" or request.get("url") != endpoint:
        return {"code": "mismatched_url", "message": f"url must be '{endpoint}' with method POST.", "param": "url"}
    try:
        payload = payload_for(endpoint, request["body"], settings, names.BATCH, "body")
    except LlamaqError as exc:
        return {"code": exc.code or "invalid_request", "message": exc.message, "param": exc.param}
    if payload.model not in known:
        return {
            "code": "model_not_found",
            "message": f"The model '{payload.model}' does not exist.",
            "param": "body.model",
        }
    return payload
