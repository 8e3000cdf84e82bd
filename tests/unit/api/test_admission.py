"""Admission on fakeredis: depth limit (429 + Retry-After), no live worker (503), unknown model (404)."""

import asyncio
import math
import time

from fakeredis import FakeRedis

from shared import names, rqcontract
from tests.fakes import MODEL
from tests.harness import CHAT, async_app, drain


def _fill(redis: FakeRedis, lane: str, count: int) -> None:
    """Jobs already waiting (no worker takes them: the model is registered, nothing drains it)."""
    if count:
        redis.rpush(rqcontract.queue_key(MODEL, lane), *[f"job_waiting{i}" for i in range(count)])


def _is_error(body: dict, status_code: str, type_: str) -> None:  # type: ignore[type-arg]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == status_code
    assert body["error"]["type"] == type_


async def test_full_lane_is_429_with_retry_after_from_depth_workers_and_mean_time() -> None:
    async with async_app(max_queue_depth=3) as fake:
        fake.serve(workers=2)
        _fill(fake.redis, names.INTERACTIVE, 3)
        fake.redis.rpush(names.job_durations_key(MODEL), 3.0, 5.0)
        reply = await fake.http.post("/v1/chat/completions", json=CHAT)
        assert reply.status_code == 429
        _is_error(reply.json(), "queue_full", "rate_limit_error")
        # 3 waiting x 4 s mean / 2 live workers
        assert reply.headers["retry-after"] == str(math.ceil(3 * 4.0 / 2))
        assert fake.redis.llen(rqcontract.queue_key(MODEL, names.INTERACTIVE)) == 3
        assert fake.job_count() == 3


async def test_retry_after_grows_with_depth_and_shrinks_with_workers() -> None:
    async with async_app(max_queue_depth=10) as fake:
        fake.serve(workers=1)
        fake.redis.rpush(names.job_durations_key(MODEL), 2.0)
        _fill(fake.redis, names.INTERACTIVE, 10)
        one_worker = int((await fake.http.post("/v1/chat/completions", json=CHAT)).headers["retry-after"])
        fake.serve(workers=5)
        five_workers = int((await fake.http.post("/v1/chat/completions", json=CHAT)).headers["retry-after"])
        assert (one_worker, five_workers) == (20, 4)


async def test_batch_lane_has_its_own_limit() -> None:
    async with async_app(max_queue_depth=1, max_batch_queue_depth=2) as fake:
        fake.serve()
        _fill(fake.redis, names.INTERACTIVE, 1)
        job = {"endpoint": "/v1/chat/completions", "body": CHAT}
        statuses = [(await fake.http.post("/v1/jobs", json=job)).status_code for _ in range(3)]
        assert statuses == [202, 202, 429]
        assert fake.redis.llen(rqcontract.queue_key(MODEL, names.BATCH)) == 2


async def test_no_live_worker_is_503_and_nothing_is_enqueued() -> None:
    async with async_app() as fake:
        fake.serve()
        # The only worker's registration has expired (it died or stopped heartbeating).
        fake.redis.zadd(names.model_workers_key(MODEL), {"w0": time.time() - 1})
        background = {"endpoint": "/v1/chat/completions", "body": CHAT}
        for path, body in (("/v1/chat/completions", CHAT), ("/v1/jobs", background)):
            reply = await fake.http.post(path, json=body)
            assert reply.status_code == 503
            _is_error(reply.json(), "no_workers", "server_error")
            assert MODEL in reply.json()["error"]["message"]
        assert fake.job_count() == 0


async def test_unknown_model_is_404() -> None:
    async with async_app() as fake:
        fake.serve()
        reply = await fake.http.post("/v1/chat/completions", json={**CHAT, "model": "gpt-17"})
        assert reply.status_code == 404
        _is_error(reply.json(), "model_not_found", "invalid_request_error")
        assert reply.json()["error"]["param"] == "model"
        assert fake.job_count() == 0


async def test_concurrent_submits_never_overfill_the_lane() -> None:
    limit, total = 7, 60
    # Nothing drains the queue, so admitted sync calls end at their wait deadline (504, job id given).
    async with async_app(max_queue_depth=limit, sync_timeout=0.5) as fake:
        fake.serve()
        replies = await asyncio.gather(*[fake.http.post("/v1/chat/completions", json=CHAT) for _ in range(total)])
        statuses = sorted(reply.status_code for reply in replies)
        assert statuses == [429] * (total - limit) + [504] * limit
        assert fake.redis.llen(rqcontract.queue_key(MODEL, names.INTERACTIVE)) == limit
        assert fake.job_count() == 2 * limit  # each admitted job: one record, one queue entry


async def test_admitted_work_completes_once_a_worker_drains_it() -> None:
    async with async_app(max_queue_depth=2) as fake:
        fake.serve()
        async with drain(fake):
            reply = await fake.http.post("/v1/chat/completions", json=CHAT)
        assert reply.status_code == 200
        assert reply.json()["choices"][0]["message"]["content"] == "ok"
