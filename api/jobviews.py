"""Read a job back: its public object, visible only to its owner."""

from typing import Any

import orjson
from redis.asyncio import Redis

from api import capacity, rqrecords
from shared import events, names
from shared.errors import NotFound
from shared.states import Status

_FIELDS = [
    "status", "owner", "model", "lane", "kind", "created_at", "started_at", "finished_at",
    "attempt", "tokens", "terminal", "endpoint", "metadata", "batch",
]  # fmt: skip


async def load(redis: Redis, job_id: str, owner: str) -> dict[str, Any]:
    """The job's record; 404 when missing, expired, or owned by another key."""
    values = await redis.hmget(names.job_key(job_id), _FIELDS)
    record = {k: v.decode() for k, v in zip(_FIELDS, values, strict=True) if v is not None}
    if record.get("owner") != owner:
        raise NotFound(f"No job found with id '{job_id}' (it may have expired).", param="job_id")
    return record


async def queue_estimate(redis: Redis, job_id: str, record: dict[str, Any]) -> tuple[int | None, float | None]:
    """Jobs ahead (place in its lane, plus the interactive lane for batch work) and likely wait, in one round trip."""
    model, lane = record["model"], record["lane"]
    async with redis.pipeline(transaction=False) as pipe:
        rqrecords.queue_place(pipe, model, lane, job_id)
        rqrecords.queue_length(pipe, model, names.INTERACTIVE)
        capacity.recent_durations(pipe, model)
        capacity.live_slots(pipe, model)
        position, interactive, recent, slots = await pipe.execute()
    if position is None:
        return None, None
    ahead = int(position) + (int(interactive) if lane != names.INTERACTIVE else 0)
    return ahead, round(capacity.wait_seconds(ahead + 1, recent, slots), 2)


async def job_object(redis: Redis, job_id: str, owner: str) -> dict[str, Any]:
    record = await load(redis, job_id, owner)
    status = record["status"]
    terminal = events.parse(orjson.loads(record["terminal"])) if record.get("terminal") else None
    body: dict[str, Any] = {
        "id": job_id,
        "object": "job",
        "endpoint": record.get("endpoint") or _endpoint(record.get("kind")),
        "model": record["model"],
        "status": status,
        "created_at": int(float(record["created_at"])),
        "started_at": _int(record.get("started_at")),
        "finished_at": _int(record.get("finished_at")),
        "attempts": int(record.get("attempt", 0)),
        "tokens_generated": int(record.get("tokens", 0)),
        "queue_position": None,
        "estimated_wait_seconds": None,
        "metadata": orjson.loads(record["metadata"]) if record.get("metadata") else None,
        "response": terminal.response if isinstance(terminal, events.Done) else None,
        "error": terminal.error if isinstance(terminal, events.Failed) else None,
    }
    if isinstance(terminal, events.Failed) and terminal.partial:
        body["partial_response"] = terminal.partial
    if status == Status.QUEUED:
        body["queue_position"], body["estimated_wait_seconds"] = await queue_estimate(redis, job_id, record)
    return body


def _endpoint(kind: str | None) -> str:
    return {"chat": "/v1/chat/completions", "embedding": "/v1/embeddings"}.get(kind or "", "/v1/completions")


def _int(value: str | None) -> int | None:
    return int(float(value)) if value else None
