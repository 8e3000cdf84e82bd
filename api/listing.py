"""Cursor pagination over an owner's index (a sorted set by creation time), newest first."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Query
from redis.asyncio import Redis

from shared.errors import LlamaqError

# The query parameters of every list route, as OpenAI names them.
Limit = Annotated[int, Query(ge=1, le=100)]
After = Annotated[str | None, Query(max_length=128)]


async def page(
    redis: Redis,
    index: str,
    limit: int,
    after: str | None,
    render: Callable[[str], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """OpenAI list object; items that expired meanwhile are dropped from the index and skipped."""
    start = 0
    if after:
        rank = await redis.zrevrank(index, after)
        start = 0 if rank is None else rank + 1
    data: list[dict[str, Any]] = []
    while len(data) < limit + 1:
        ids = await redis.zrevrange(index, start, start + limit)
        if not ids:
            break
        start += len(ids)
        for raw in ids:
            try:
                data.append(await render(raw.decode()))
            except LlamaqError:
                await redis.zrem(index, raw)
            if len(data) == limit + 1:
                break
    has_more = len(data) > limit
    data = data[:limit]
    if not data:
        # The spec's list schemas type the cursors as strings, never null; where it requires them (files),
        # the route fills them in.
        return {"object": "list", "data": data, "has_more": has_more}
    return {"object": "list", "data": data, "first_id": data[0]["id"], "last_id": data[-1]["id"], "has_more": has_more}
