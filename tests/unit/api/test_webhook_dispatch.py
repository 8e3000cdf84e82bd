"""The delivery schedule on fakeredis: backoff, one fan-out per event, leases, retries, dead letters, figures."""

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import orjson
import pytest
from prometheus_client import generate_latest

from api.fleet import Snapshot
from api.webhook_dispatch import Dispatcher, retry_delay
from api.webhook_store import Outcome, Store
from api.webhook_views import dead_letters, webhook_families
from shared import names
from shared.keys import owner_of_key
from shared.settings import Settings
from shared.webhooks import EventType, announce
from tests.harness import sync_app

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()
URLS = ["https://a.example/hook", "https://b.example/hook"]


class FakeSender:
    """Answers each attempt from `errors` in turn (None: acknowledged), recording what was sent."""

    def __init__(self, *errors: str | None) -> None:
        self.errors = list(errors)
        self.sent: list[tuple[str, str, bytes]] = []

    async def attempt(self, url: str, event_id: str, body: bytes) -> str | None:
        self.sent.append((url, event_id, body))
        return self.errors.pop(0) if self.errors else None

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def redis() -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    client = fakeredis.FakeAsyncRedis()
    yield client
    await client.aclose()


def _dispatcher(redis: Any, sender: FakeSender, **overrides: Any) -> Dispatcher:
    fields = {"redis_url": "redis://unused", "webhook_urls": URLS, "webhook_secret": SECRET, **overrides}
    settings = Settings(**fields)
    dispatcher = Dispatcher(redis, settings)
    dispatcher.sender = sender  # type: ignore[assignment]
    return dispatcher


async def _announce(redis: Any, object_id: str = "batch_1") -> None:
    await redis.set(names.webhooks_enabled_key(), 1)
    async with redis.pipeline(transaction=True) as pipe:
        announce(pipe, EventType.BATCH_COMPLETED, object_id, "public")
        await pipe.execute()


def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    assert [retry_delay(n, 5, 3600, 1.0) for n in range(1, 6)] == [5, 10, 20, 40, 80]
    assert [retry_delay(n, 5, 3600, 0.0) for n in range(1, 6)] == [2.5, 5, 10, 20, 40]
    assert retry_delay(20, 5, 3600, 1.0) == 3600 and retry_delay(500, 5, 3600, 0.5) == 2700


async def test_each_event_goes_once_to_each_endpoint_with_one_event_id_however_many_apis(redis: Any) -> None:
    await _announce(redis)
    first, second = FakeSender(), FakeSender()
    await _dispatcher(redis, first).tick()
    await _dispatcher(redis, second).tick()

    assert second.sent == [] and sorted(url for url, _, _ in first.sent) == URLS
    assert len({event_id for _, event_id, _ in first.sent}) == 1
    event = orjson.loads(first.sent[0][2])
    assert event["object"] == "event" and event["type"] == "batch.completed" and event["data"] == {"id": "batch_1"}
    assert await redis.zcard(names.webhook_schedule_key()) == 0
    assert int(await redis.hget(names.webhook_stats_key(), "delivered")) == 2
    # Announcing stays on while an API delivers, and for the delivery max age after the last one stopped.
    assert 259_000 < await redis.ttl(names.webhooks_enabled_key()) <= 259_200


async def test_a_claim_is_leased_and_a_lapsed_lease_is_claimed_again(redis: Any) -> None:
    await _announce(redis)
    await _dispatcher(redis, FakeSender())._fan_out(await redis.lindex(names.webhook_outbox_key(), 0), 60)
    store, now = Store(redis), time.time()

    held = await store.claim(now, 30, 10, "api-1")
    assert len(held) == 2 and await store.claim(now, 30, 10, "api-2") == []
    taken = await store.claim(now + 31, 30, 10, "api-2")  # api-1 died mid-attempt
    assert [c.delivery_id for c in taken] == [c.delivery_id for c in held] and taken[0].attempt == 2

    assert not await store.finish(held[0], Outcome.DELIVERED)  # the old holder changes nothing
    assert await store.finish(taken[0], Outcome.DELIVERED)
    assert await redis.zcard(names.webhook_schedule_key()) == 1


async def test_a_failure_is_retried_later_with_the_same_id_then_delivered(redis: Any) -> None:
    await _announce(redis)
    sender = FakeSender("HTTP 500", "HTTP 500")
    dispatcher = _dispatcher(redis, sender, webhook_urls=URLS[:1], webhook_retry_base=0.2)
    await dispatcher.tick()
    (due,) = [score for _, score in await redis.zrange(names.webhook_schedule_key(), 0, -1, withscores=True)]
    assert time.time() + 0.05 <= due <= time.time() + 0.2

    deadline = time.monotonic() + 5
    while await redis.zcard(names.webhook_schedule_key()) and time.monotonic() < deadline:
        await dispatcher.tick()
    assert len(sender.sent) == 3 and len({event_id for _, event_id, _ in sender.sent}) == 1
    stats = await redis.hgetall(names.webhook_stats_key())
    assert stats == {b"retried": b"2", b"delivered": b"1"}


async def test_a_delivery_out_of_attempts_is_dead_lettered_and_counted(redis: Any) -> None:
    await _announce(redis)
    dispatcher = _dispatcher(redis, FakeSender(*["HTTP 503"] * 4), webhook_max_attempts=2, webhook_retry_base=0.01)
    deadline = time.monotonic() + 5
    while await redis.llen(names.webhook_dead_key()) < 2 and time.monotonic() < deadline:
        await dispatcher.tick()

    letters = await dead_letters(redis, None, 10)
    assert sorted(letter["url"] for letter in letters) == ["https://a.example", "https://b.example"]
    assert {letter["last_error"] for letter in letters} == {"HTTP 503"}
    assert all(letter["attempts"] == 2 and letter["object_id"] == "batch_1" for letter in letters)
    assert await dead_letters(redis, "someone-else", 10) == []
    text = generate_latest(Snapshot(await webhook_families(redis))).decode()  # type: ignore[arg-type]
    assert 'llamaq_webhook_deliveries_total{outcome="dead_lettered"} 2.0' in text
    assert "llamaq_webhook_dead_letters 2.0" in text and "llamaq_webhook_pending 0.0" in text


async def test_a_delivery_past_its_max_age_is_dead_lettered(redis: Any) -> None:
    await redis.set(names.webhooks_enabled_key(), 1)
    async with redis.pipeline(transaction=True) as pipe:
        announce(pipe, EventType.BATCH_FAILED, "batch_old", "public", now=time.time() - 100)
        await pipe.execute()
    await _dispatcher(redis, FakeSender("HTTP 500"), webhook_urls=URLS[:1], webhook_max_age=50).tick()

    (letter,) = await dead_letters(redis, None, 10)
    assert letter["attempts"] == 1 and letter["type"] == "batch.failed"


async def test_owner_endpoints_get_that_owners_events_besides_the_deployments(redis: Any) -> None:
    sender = FakeSender()
    dispatcher = _dispatcher(redis, sender, webhook_key_urls='{"key-1": "https://owner.example/hook"}')
    await redis.set(names.webhooks_enabled_key(), 1)
    async with redis.pipeline(transaction=True) as pipe:
        announce(pipe, EventType.BATCH_COMPLETED, "batch_mine", owner_of_key("key-1"))
        announce(pipe, EventType.BATCH_COMPLETED, "batch_other", owner_of_key("key-2"))
        await pipe.execute()
    await dispatcher.tick()

    got = sorted((url, orjson.loads(body)["data"]["id"]) for url, _, body in sender.sent)
    assert ("https://owner.example/hook", "batch_mine") in got
    assert [url for url, object_id in got if object_id == "batch_other"] == URLS
    assert len(got) == 5


async def test_a_dead_letter_names_the_endpoint_by_its_origin_and_the_lease_outlasts_an_attempt(
    redis: Any,
) -> None:
    await _announce(redis)
    url = "https://a.example:8443/s3cret/hook?token=s3cret"
    dispatcher = _dispatcher(redis, FakeSender("HTTP 500"), webhook_urls=[url], webhook_max_attempts=1)
    assert dispatcher.lease == 2 * dispatcher.settings.webhook_timeout + 10
    await dispatcher.tick()

    (letter,) = await dead_letters(redis, None, 10)
    assert letter["url"] == "https://a.example:8443" and "s3cret" not in orjson.dumps(letter).decode()


def test_the_dead_letters_route_shows_each_key_its_own() -> None:
    with sync_app(api_keys="key-1,key-2") as app:
        for owner in (owner_of_key("key-1"), owner_of_key("key-2"), owner_of_key("key-1")):
            app.redis.lpush(names.webhook_dead_key(), orjson.dumps({"event_id": "evt_x", "owner": owner}))
        mine = app.http.get("/v1/webhooks/dead_letters", headers={"Authorization": "Bearer key-1"})
        theirs = app.http.get("/v1/webhooks/dead_letters?limit=1", headers={"Authorization": "Bearer key-2"})
        nobody = app.http.get("/v1/webhooks/dead_letters")

    assert mine.json()["object"] == "list" and len(mine.json()["data"]) == 2
    assert [letter["owner"] for letter in theirs.json()["data"]] == [owner_of_key("key-2")]
    assert nobody.status_code == 401
