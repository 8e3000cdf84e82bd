"""Uploads go into Redis line by line: a large file is never held whole in API memory."""

import hashlib
import tempfile
import tracemalloc

import orjson
from fastapi import UploadFile
from redis.asyncio import Redis

from api.files import iter_lines, store_upload
from shared import names
from shared.settings import Settings


def _spooled(lines: list[bytes], trailing_newline: bool) -> UploadFile:
    """What the multipart parser hands the route: a file spooled to disk, not bytes in memory."""
    spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 - closed by the test through UploadFile
    spool.write(b"\n".join(lines) + (b"\n" if trailing_newline else b""))
    spool.seek(0)
    return UploadFile(spool, filename="big.jsonl")


async def test_a_large_upload_is_streamed_into_redis_with_every_line_intact(fresh_redis_url: str) -> None:
    pad = "x" * 250
    lines = [orjson.dumps({"custom_id": f"r{i}", "body": {"pad": pad}}) for i in range(80_000)]
    upload = _spooled(lines, trailing_newline=False)
    redis = Redis.from_url(fresh_redis_url)
    settings = Settings(redis_url=fresh_redis_url)
    try:
        tracemalloc.start()
        try:
            stored = await store_upload(redis, settings, upload, "public")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        size = sum(len(line) + 1 for line in lines) - 1
        assert stored["bytes"] == size > 20_000_000
        assert peak < size // 5, f"upload peaked at {peak} bytes of Python memory for a {size}-byte file"
        key = names.file_lines_key(stored["id"])
        assert await redis.llen(key) == len(lines)
        digest = hashlib.sha256()
        async for chunk in iter_lines(redis, key):
            digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(b"".join(line + b"\n" for line in lines)).hexdigest()
        assert 0 < await redis.ttl(key) <= settings.result_ttl
    finally:
        await upload.close()
        await redis.aclose()
