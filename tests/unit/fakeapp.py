"""The real ASGI app on fakeredis behind an async client, for fast admission, bad-input and fuzz tests.

A served model is only its registration in Redis; `drain` runs the stand-in worker over the lanes, so
valid requests complete instead of waiting out their deadline.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import fakeredis
import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from api.app import create_app
from api.stopping import stop_task
from shared import names, rqcontract
from shared.settings import Settings
from tests.fakes import register_worker
from tests.standin import StandInWorker

MODEL = "tiny"


@dataclass
class FakeApp:
    app: FastAPI
    redis: Redis
    client: httpx.AsyncClient
    settings: Settings
    worker: StandInWorker

    def serve(self, workers: int = 1, n_ctx: int = 2048) -> None:
        """Register `workers` live workers for MODEL, as their heartbeats would."""
        register_worker(self.worker.redis, MODEL, workers=workers, context=(n_ctx, 8))

    async def job_count(self) -> int:
        """Jobs created so far: llamaq job records plus anything waiting in a lane."""
        records = [key async for key in self.redis.scan_iter(match=names.job_key("*"))]
        jobs = {key for key in records if key.count(b":") == 2}
        queued = [await self.redis.llen(rqcontract.queue_key(MODEL, lane)) for lane in names.LANES]
        return len(jobs) + sum(queued)


@contextlib.asynccontextmanager
async def fake_app(**overrides: object) -> AsyncIterator[FakeApp]:
    settings = Settings(redis_url="redis://fake", **overrides)  # type: ignore[arg-type]
    server = fakeredis.FakeServer()
    redis = fakeredis.aioredis.FakeRedis(server=server)
    worker = StandInWorker(fakeredis.FakeRedis(server=server), settings, MODEL)
    app = create_app(settings, redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://llamaq.test") as client:
            yield FakeApp(app, redis, client, settings, worker)
    await redis.aclose()
    worker.redis.close()


@contextlib.asynccontextmanager
async def drain(fake: FakeApp) -> AsyncIterator[None]:
    """The stand-in worker at work: ends every job queued for MODEL with the reply "ok"."""

    async def loop() -> None:
        while True:
            fake.worker.drain_once()
            await asyncio.sleep(0.005)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        await stop_task(task)
