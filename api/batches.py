"""OpenAI batches: the record in Redis, its public object, creation and cancellation."""

import secrets
import time
from typing import Any

import orjson
from redis.asyncio import Redis

from api.files import load_file, new_file_id
from shared import names
from shared.errors import InvalidRequest, NotFound
from shared.schemas import BatchCreate
from shared.settings import Settings
from shared.states import BatchStatus

_STAMPS = [
    "in_progress_at", "expires_at", "finalizing_at", "completed_at",
    "failed_at", "expired_at", "cancelling_at", "cancelled_at",
]  # fmt: skip
_UNITS = {"s": 1, "m": 60, "h": 3600}


def window_seconds(window: str) -> int:
    return int(window[:-1]) * _UNITS[window[-1]]


async def create_batch(redis: Redis, settings: Settings, body: BatchCreate, owner: str) -> str:
    source = await load_file(redis, body.input_file_id, owner)
    if source.get("purpose") != "batch" or source.get("batch"):
        raise InvalidRequest("input_file_id must name a file uploaded with purpose 'batch'.", param="input_file_id")
    batch_id = "batch_" + secrets.token_hex(16)
    now, window = int(time.time()), window_seconds(body.completion_window)
    ttl = window + settings.result_ttl
    record: dict[str, Any] = {
        "owner": owner,
        "endpoint": body.endpoint,
        "input_file_id": body.input_file_id,
        "completion_window": body.completion_window,
        "status": BatchStatus.VALIDATING,
        "created_at": now,
        "expires_at": now + window,
        "metadata": orjson.dumps(body.metadata) if body.metadata is not None else b"",
        "output_file_id": new_file_id(),
        "error_file_id": new_file_id(),
        "completed": 0,
        "failed": 0,
        "enqueued": 0,
    }
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(names.batch_key(batch_id), mapping=record)
        pipe.expire(names.batch_key(batch_id), ttl)
        for kind, file_id in (("output", record["output_file_id"]), ("errors", record["error_file_id"])):
            output = {"owner": owner, "batch": batch_id, "kind": kind, "created_at": now, "purpose": "batch_output"}
            output["filename"] = f"{batch_id}_{'output' if kind == 'output' else 'error'}.jsonl"
            pipe.hset(names.file_key(file_id), mapping=output)
            pipe.expire(names.file_key(file_id), ttl)
        pipe.zadd(names.owner_index_key(owner, "batches"), {batch_id: time.time()})
        pipe.sadd(names.batches_active_key(), batch_id)
        await pipe.execute()
    return batch_id


async def load_batch(redis: Redis, batch_id: str, owner: str | None) -> dict[str, str]:
    """The batch's record; 404 when missing, expired, or (with `owner`) owned by another key."""
    raw = await redis.hgetall(names.batch_key(batch_id))
    record = {k.decode(): v.decode() for k, v in raw.items()}
    if not record or (owner is not None and record.get("owner") != owner):
        raise NotFound(f"No batch found with id '{batch_id}'.", param="batch_id")
    return record


def batch_object(batch_id: str, record: dict[str, str]) -> dict[str, Any]:
    completed, failed = int(record.get("completed", 0)), int(record.get("failed", 0))
    total = int(record.get("total", 0))
    body: dict[str, Any] = {
        "id": batch_id,
        "object": "batch",
        "endpoint": record["endpoint"],
        "input_file_id": record["input_file_id"],
        "completion_window": record["completion_window"],
        "status": record["status"],
        "created_at": int(record["created_at"]),
        "request_counts": {"total": total, "completed": completed, "failed": failed},
        "metadata": orjson.loads(record["metadata"]) if record.get("metadata") else None,
    }
    body.update({stamp: int(float(record[stamp])) for stamp in _STAMPS if record.get(stamp)})
    if record.get("errors"):
        body["errors"] = {"object": "list", "data": orjson.loads(record["errors"])}
    if BatchStatus(record["status"]).ended:
        if completed:
            body["output_file_id"] = record["output_file_id"]
        if failed:
            body["error_file_id"] = record["error_file_id"]
    return body
