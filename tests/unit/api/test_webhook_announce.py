"""Every way a batch ends announces its one webhook event, in the step that ends it; nothing without webhooks."""

from collections.abc import Iterator
from typing import Any

import fakeredis
import orjson
import pytest

from shared import names, rqcontract
from shared.webhooks import ANNOUNCE, EventType, announce
from tests.fakes import MODEL
from tests.harness import SyncApp, line, sync_app


@pytest.fixture
def jobs() -> Iterator[SyncApp]:
    with sync_app() as app:
        app.redis.set(names.webhooks_enabled_key(), 1)  # as an API delivering webhooks keeps it
        yield app


def _outbox(jobs: SyncApp) -> list[dict[str, Any]]:
    return [orjson.loads(raw) for raw in jobs.redis.lrange(names.webhook_outbox_key(), 0, -1)]


def test_a_completed_batch_announces_batch_completed_once(jobs: SyncApp) -> None:
    batch = jobs.create_batch(jobs.upload([line("a"), line("b")])["id"])
    jobs.worker.run(jobs.worker.take())
    assert _outbox(jobs) == []
    jobs.worker.run(jobs.worker.take())
    done = jobs.wait_batch(batch["id"], lambda b: b["status"] == "completed")

    assert _outbox(jobs) == [
        {"type": "batch.completed", "id": batch["id"], "owner": "public", "at": done["completed_at"]}
    ]


def test_a_cancelled_batch_announces_batch_cancelled(jobs: SyncApp) -> None:
    batch = jobs.create_batch(jobs.upload([line("a"), line("b")])["id"])
    jobs.wait_batch(batch["id"], lambda _: jobs.redis.llen(rqcontract.queue_key(MODEL, names.BATCH)) == 2)
    jobs.http.post(f"/v1/batches/{batch['id']}/cancel")
    jobs.wait_batch(batch["id"], lambda b: b["status"] == "cancelled")

    assert [(e["type"], e["id"]) for e in _outbox(jobs)] == [("batch.cancelled", batch["id"])]


def test_a_batch_that_fails_validation_announces_batch_failed(jobs: SyncApp) -> None:
    batch = jobs.create_batch(jobs.upload([b"not json"])["id"])
    jobs.wait_batch(batch["id"], lambda b: b["status"] == "failed")

    assert [(e["type"], e["id"]) for e in _outbox(jobs)] == [("batch.failed", batch["id"])]


def test_an_expired_batch_announces_batch_expired_and_nothing_after() -> None:
    with sync_app() as jobs:
        jobs.redis.set(names.webhooks_enabled_key(), 1)
        batch = jobs.create_batch(jobs.upload([line("a"), line("b")])["id"], window="1s")
        jobs.worker.run(jobs.worker.take())
        jobs.wait_batch(batch["id"], lambda b: b["status"] == "expired" and b["request_counts"]["failed"], 15)

        assert [(e["type"], e["id"]) for e in _outbox(jobs)] == [("batch.expired", batch["id"])]


def test_nothing_is_written_while_no_api_delivers_webhooks() -> None:
    with sync_app() as jobs:
        batch = jobs.create_batch(jobs.upload([line("a")])["id"])
        jobs.worker.run(jobs.worker.take())
        jobs.wait_batch(batch["id"], lambda b: b["status"] == "completed")

        assert not jobs.redis.exists(names.webhook_outbox_key())


@pytest.mark.parametrize("transaction", [True, False])
def test_announce_on_a_sync_pipeline_writes_one_entry_only_when_enabled(transaction: bool) -> None:
    redis = fakeredis.FakeRedis()
    with redis.pipeline(transaction=transaction) as pipe:
        announce(pipe, EventType.RESPONSE_COMPLETED, "resp_1", "owner-a", now=10)
        pipe.execute()
    assert redis.llen(names.webhook_outbox_key()) == 0

    redis.set(names.webhooks_enabled_key(), 1)
    with redis.pipeline(transaction=transaction) as pipe:
        pipe.set("llamaq:response:resp_1", "completed")
        announce(pipe, EventType.RESPONSE_COMPLETED, "resp_1", "owner-a", now=10.7)
        pipe.execute()
    (entry,) = redis.lrange(names.webhook_outbox_key(), 0, -1)
    assert orjson.loads(entry) == {"type": "response.completed", "id": "resp_1", "owner": "owner-a", "at": 10}


async def test_announce_on_an_async_pipeline() -> None:
    redis = fakeredis.FakeAsyncRedis()
    await redis.set(names.webhooks_enabled_key(), 1)
    async with redis.pipeline(transaction=True) as pipe:
        announce(pipe, EventType.RESPONSE_FAILED, "resp_2", "o")
        await pipe.execute()
    assert orjson.loads(await redis.lindex(names.webhook_outbox_key(), 0))["type"] == "response.failed"
    await redis.aclose()


def test_the_outbox_is_capped() -> None:
    redis = fakeredis.FakeRedis()
    redis.set(names.webhooks_enabled_key(), 1)
    script = ANNOUNCE.replace("-100000", "-3")
    for index in range(5):
        redis.eval(script, 0, "batch.completed", f"batch_{index}", "o", 1)
    assert [orjson.loads(e)["id"] for e in redis.lrange(names.webhook_outbox_key(), 0, -1)] == [
        "batch_2", "batch_3", "batch_4",
    ]  # fmt: skip
