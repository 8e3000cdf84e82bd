"""Files in Redis: uploads stored line by line (never whole in API memory), batch outputs as views."""

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import UploadFile
from redis.asyncio import Redis

from shared import names
from shared.errors import NotFound, PayloadTooLarge
from shared.settings import Settings

CHUNK_LINES = 1000


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


async def store_upload(redis: Redis, settings: Settings, upload: UploadFile, owner: str) -> dict[str, Any]:
    file_id = new_file_id()
    lines_key = names.file_lines_key(file_id)
    size, lines, tail, pending = 0, 0, b"", []
    while chunk := await upload.read(1 << 16):
        size += len(chunk)
        if size > settings.max_file_bytes:
            await redis.delete(lines_key)
            raise PayloadTooLarge(f"The file exceeds this server's limit of {settings.max_file_bytes} bytes.")
        *complete, tail = (tail + chunk).split(b"\n")
        pending.extend(complete)
        if len(pending) >= CHUNK_LINES:
            lines += await _push(redis, lines_key, pending, settings.result_ttl)
            pending = []
    pending.extend([tail] if tail else [])
    lines += await _push(redis, lines_key, pending, settings.result_ttl)
    record = {
        "owner": owner,
        "bytes": size,
        "created_at": int(time.time()),
        "filename": (upload.filename or "upload.jsonl")[:256],
        "purpose": "batch",
        "lines": lines,
    }
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(names.file_key(file_id), mapping=record)
        pipe.expire(names.file_key(file_id), settings.result_ttl)
        pipe.zadd(names.owner_index_key(owner, "files"), {file_id: time.time()})
        await pipe.execute()
    return file_object(file_id, record, settings)


async def _push(redis: Redis, key: str, lines: list[bytes], ttl: int) -> int:
    if not lines:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        pipe.rpush(key, *lines)
        pipe.expire(key, ttl)
        await pipe.execute()
    return len(lines)


def file_object(file_id: str, record: dict[str, Any], settings: Settings) -> dict[str, Any]:
    created = int(record["created_at"])
    return {
        "id": file_id,
        "object": "file",
        "bytes": int(record["bytes"]),
        "created_at": created,
        "expires_at": created + settings.result_ttl,
        "filename": record["filename"],
        "purpose": record["purpose"],
        "status": "processed",
    }


async def load_file(redis: Redis, file_id: str, owner: str) -> dict[str, Any]:
    """The file's record (an output file reads its batch's counters); 404 for others' or expired files."""
    raw = await redis.hgetall(names.file_key(file_id))
    record = {k.decode(): v.decode() for k, v in raw.items()}
    if record.get("owner") != owner:
        raise NotFound(f"No such File object: {file_id}", param="file_id")
    if record.get("batch"):
        counter = "completed_bytes" if record["kind"] == "output" else "failed_bytes"
        record["bytes"] = int(await redis.hget(names.batch_key(record["batch"]), counter) or 0)
    return record


def lines_key_of(file_id: str, record: dict[str, Any]) -> str:
    if record.get("batch"):
        return names.batch_lines_key(record["batch"], record["kind"])
    return names.file_lines_key(file_id)


async def iter_lines(redis: Redis, key: str) -> AsyncIterator[bytes]:
    """The lines of a stored file, a chunk at a time, each ending in a newline."""
    start = 0
    while True:
        chunk = await redis.lrange(key, start, start + CHUNK_LINES - 1)
        if not chunk:
            return
        start += len(chunk)
        yield b"".join(line + b"\n" for line in chunk)
