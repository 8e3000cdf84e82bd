"""The real app in-process on fakeredis: the one harness of the unit tests that talk HTTP to the API.

One `FakeServer` holds everything. The app has its own async client; the test and the worker side
share a sync one. Jobs are done by the step worker (`worker`), driven by the test, or, when a
`FakeLlama` is given, by the real RQ worker on a thread.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fakeredis
import httpx
import openai
import orjson
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.stopping import stop_task
from shared import names, rqcontract
from shared.settings import Settings
from tests.fakes import (
    MODEL,
    FakeLlama,
    ThreadWorker,
    async_redis,
    make_context,
    make_engine,
    make_settings,
    register_worker,
    sync_redis,
)
from tests.probes import wait_for
from tests.stepworker import StepWorker

BASE_URL = "http://llamaq.test"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
# n_ctx and max_token_bytes a served model announces.
CONTEXT = (2048, 8)


@dataclass
class InProcess:
    """What every in-process test gets: the app, its settings, a sync client on its Redis, the step worker."""

    app: FastAPI
    settings: Settings
    redis: fakeredis.FakeRedis
    worker: StepWorker

    def serve(self, workers: int = 1, n_ctx: int = CONTEXT[0]) -> None:
        """Register `workers` live workers for MODEL, as their heartbeats would (0: known, none live)."""
        register_worker(self.redis, MODEL, workers=workers, context=(n_ctx, CONTEXT[1]))
        self.worker.n_ctx = n_ctx

    def job_count(self) -> int:
        """Jobs created so far: llamaq job records plus anything waiting in a lane."""
        records = {key for key in self.redis.scan_iter(match=names.job_key("*")) if key.count(b":") == 2}
        return len(records) + sum(self.redis.llen(rqcontract.queue_key(MODEL, lane)) for lane in names.LANES)


@dataclass
class AsyncApp(InProcess):
    http: httpx.AsyncClient
    client: openai.AsyncOpenAI


@dataclass
class SyncApp(InProcess):
    http: TestClient

    def submit(self, body: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        request = {"endpoint": "/v1/chat/completions", "body": body or CHAT}
        return self._ok(self.http.post("/v1/jobs", json=request, headers=headers), 202)

    def upload(self, lines: list[Any], **headers: str) -> dict[str, Any]:
        content = b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)
        files = {"file": ("input.jsonl", content, "application/jsonl")}
        return self._ok(self.http.post("/v1/files", files=files, data={"purpose": "batch"}, headers=headers))

    def create_batch(self, file_id: str, window: str = "24h", **headers: str) -> dict[str, Any]:
        body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": window}
        return self._ok(self.http.post("/v1/batches", json=body, headers=headers))

    def batch(self, batch_id: str, **headers: str) -> dict[str, Any]:
        return self._ok(self.http.get(f"/v1/batches/{batch_id}", headers=headers))

    def wait_batch(
        self, batch_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 10.0, **headers: str
    ) -> dict[str, Any]:
        """The batch once `done(batch)` holds."""

        def reached() -> dict[str, Any] | None:
            batch = self.batch(batch_id, **headers)
            return batch if done(batch) else None

        return wait_for(reached, f"batch {batch_id} to reach the expected state", timeout, interval=0.02)

    @staticmethod
    def _ok(response: Any, status: int = 200) -> dict[str, Any]:
        assert response.status_code == status, response.text
        return dict(response.json())


def line(custom_id: str, body: dict[str, Any] | None = None, url: str = "/v1/chat/completions") -> dict[str, Any]:
    """One line of a batch input file."""
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body or CHAT}


@contextlib.asynccontextmanager
async def async_app(
    llama: FakeLlama | None = None, *, workers: int | None = None, engine: Any = None, **overrides: Any
) -> AsyncIterator[AsyncApp]:
    """The app behind httpx and the official async client; `workers`: served at once (None: MODEL unknown).

    The real RQ worker runs on a thread with `engine` (a scheduler), or with the fake chat engine over `llama`.
    """
    settings = make_settings(**overrides)
    server = fakeredis.FakeServer()
    sync = sync_redis(server)
    redis = async_redis(server)
    app = create_app(settings, redis)
    engine = engine or (make_engine(llama) if llama else None)
    running = ThreadWorker(make_context(sync, engine, settings)) if engine else contextlib.nullcontext()
    with running:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
                client = openai.AsyncOpenAI(
                    base_url=f"{BASE_URL}/v1", api_key="unused", http_client=http, max_retries=0
                )
                harness = AsyncApp(app, settings, sync, StepWorker(sync, settings), http, client)
                if workers is not None:
                    harness.serve(workers)
                yield harness
    await redis.aclose()
    sync.close()


@contextlib.contextmanager
def sync_app(**overrides: Any) -> Iterator[SyncApp]:
    """The app behind a synchronous test client, with MODEL served by one worker."""
    settings = make_settings(**overrides)
    server = fakeredis.FakeServer()
    sync = sync_redis(server)
    app = create_app(settings, redis=fakeredis.FakeAsyncRedis(server=server))
    with TestClient(app) as http:
        harness = SyncApp(app, settings, sync, StepWorker(sync, settings), http)
        harness.serve()
        yield harness


@contextlib.asynccontextmanager
async def drain(harness: InProcess) -> AsyncIterator[None]:
    """The step worker at work: runs every job queued for MODEL with the reply "ok"."""

    async def loop() -> None:
        while True:
            harness.worker.drain_once()
            await asyncio.sleep(0.005)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        await stop_task(task)
