"""The real ASGI app on fakeredis, for fast admission, bad-input and fuzz tests.

A served model is only its registration in Redis; `drain` stands in for a worker by ending each queued
job with a fixed reply, so valid requests complete instead of waiting out their deadline.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import fakeredis
import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from api.app import create_app
from api.stopping import stop_task
from shared import events, names, objects
from shared.emission import emission
from shared.jobs import Status, response_id
from shared.scripts import CLAIM, EMIT
from shared.settings import Settings

MODEL = "tiny"


@dataclass
class FakeApp:
    app: FastAPI
    redis: Redis
    client: httpx.AsyncClient
    settings: Settings

    async def job_count(self) -> int:
        """Jobs created so far: llamaq job records plus anything waiting in a lane."""
        records = [key async for key in self.redis.scan_iter(match=names.job_key("*"))]
        jobs = {key for key in records if key.count(b":") == 2}
        queued = [await self.redis.llen(names.rq_queue_key(MODEL, lane)) for lane in names.LANES]
        return len(jobs) + sum(queued)


async def serve_model(redis: Redis, model: str = MODEL, workers: int = 1, n_ctx: int = 2048) -> None:
    """Register `workers` live workers for `model`, as their heartbeats would."""
    await redis.hsetnx(names.models_key(), model, int(time.time()))
    await redis.zadd(names.model_workers_key(model), {f"w{i}": time.time() + 600 for i in range(workers)})
    await redis.hset(names.model_info_key(model), mapping={"n_ctx": n_ctx, "max_token_bytes": 8})


@contextlib.asynccontextmanager
async def fake_app(**overrides: object) -> AsyncIterator[FakeApp]:
    settings = Settings(redis_url="redis://fake", **overrides)  # type: ignore[arg-type]
    redis = fakeredis.aioredis.FakeRedis(server=fakeredis.FakeServer())
    app = create_app(settings, redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://llamaq.test") as client:
            yield FakeApp(app, redis, client, settings)
    await redis.aclose()


async def _finish(redis: Redis, settings: Settings, job_id: str) -> None:
    keys = [names.job_key(job_id), names.heartbeat_key(job_id)]
    attempt = int(await redis.register_script(CLAIM)(keys=keys, args=["fake", time.time(), 10]))
    if attempt < 0:
        return
    record = await redis.hmget(names.job_key(job_id), ["kind", "model", "created_at"])
    kind, model, created = record[0].decode(), record[1].decode(), int(float(record[2]))
    build = objects.chat_completion if kind == "chat" else objects.text_completion
    reply = build(response_id(job_id, kind), model, created, "ok", "stop", objects.usage(1, 1))
    emit = redis.register_script(EMIT)
    for event, kind_, terminal in ((events.started("fake", 1, attempt), events.STARTED, ""),
                                   (events.token("ok"), events.TOKEN, ""),
                                   (events.done(reply), events.DONE, Status.COMPLETED)):  # fmt: skip
        keys, args = emission(settings, job_id, event, kind_, attempt=attempt, terminal=terminal)
        await emit(keys=keys, args=args)


@contextlib.asynccontextmanager
async def drain(fake: FakeApp, model: str = MODEL) -> AsyncIterator[None]:
    """A stand-in worker: ends every job queued for `model` with the reply "ok"."""

    async def loop() -> None:
        while True:
            for lane in names.LANES:
                job_id = await fake.redis.lpop(names.rq_queue_key(model, lane))
                if job_id is not None:
                    await _finish(fake.redis, fake.settings, job_id.decode())
            await asyncio.sleep(0.005)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        await stop_task(task)
