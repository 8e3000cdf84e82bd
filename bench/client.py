"""Streaming OpenAI chat client that timestamps every chunk, and a closed-loop concurrent load."""

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from bench.stats import Stream


async def stream_chat(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Stream:
    """POST a streaming chat request; time the first and last text chunk and the end of the stream."""
    out = Stream()
    started = time.perf_counter()
    usage_tokens: int | None = None
    try:
        async with client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                out.error = f"HTTP {response.status_code}"
                await response.aread()
                return out
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = orjson.loads(line[6:])
                usage_tokens = _take(chunk, out, time.perf_counter() - started) or usage_tokens
    except httpx.HTTPError as exc:
        out.error = type(exc).__name__
    out.end = time.perf_counter() - started
    if usage_tokens is not None:
        out.tokens = usage_tokens
    return out


def _take(chunk: dict[str, Any], out: Stream, now: float) -> int | None:
    """Fold one chunk into `out`; returns the usage's completion token count when the chunk has one."""
    if "error" in chunk:
        out.error = str(chunk["error"].get("code") or "error")
    for choice in chunk.get("choices") or ():
        if content := (choice.get("delta") or {}).get("content"):
            out.text += content
            out.tokens += 1
            out.last = now
            if out.ttft is None:
                out.ttft = now
        if choice.get("finish_reason"):
            out.finish_reason = choice["finish_reason"]
    usage = chunk.get("usage")
    return int(usage["completion_tokens"]) if usage else None


Bodies = Callable[[int, int], dict[str, Any]]  # (client, its k-th request) -> the request body


async def _sequential(client: httpx.AsyncClient, url: str, bodies: Bodies, who: int, count: int) -> list[Stream]:
    return [await stream_chat(client, url, bodies(who, k)) for k in range(count)]


async def load_each(url: str, bodies: Bodies, clients: int, per_client: int) -> tuple[list[Stream], float]:
    """`clients` concurrent clients, each sending `per_client` requests back to back; streams in client order."""
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits) as client:
        started = time.perf_counter()
        work = (_sequential(client, url, bodies, who, per_client) for who in range(clients))
        groups = await asyncio.gather(*work)
        wall = time.perf_counter() - started
    return [stream for group in groups for stream in group], wall


async def load(url: str, body: dict[str, Any], clients: int, per_client: int) -> tuple[list[Stream], float]:
    """`clients` concurrent clients, each sending `per_client` requests back to back; returns streams and wall time."""
    return await load_each(url, lambda _who, _k: body, clients, per_client)


def run_load(url: str, body: dict[str, Any], clients: int, per_client: int) -> tuple[list[Stream], float]:
    return asyncio.run(load(url, body, clients, per_client))
