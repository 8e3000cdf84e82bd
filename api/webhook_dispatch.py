"""Webhook delivery, inside every API: announced events fanned out to their endpoints, then sent until acknowledged.

Every step is in Redis (`api/webhook_store.py`), so several APIs share the work and a restart loses
nothing: an event is scheduled to each endpoint once (a compare-and-pop of the outbox), each attempt is
claimed under a lease, and a failure is retried with exponential backoff and jitter until
LLAMAQ_WEBHOOK_MAX_ATTEMPTS or LLAMAQ_WEBHOOK_MAX_AGE, then dead-lettered. At least once: an attempt
whose answer is lost is sent again, with the same `webhook-id`.
"""

import asyncio
import logging
import random
import secrets
import time

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.stopping import stop_task
from api.webhook_guard import Refused
from api.webhook_sender import Sender
from api.webhook_store import Claimed, Outcome, Store
from shared import names
from shared.settings import Settings
from shared.webhook_config import key_endpoints, secret_bytes

logger = logging.getLogger(__name__)

CLAIM_LIMIT = 32


def retry_delay(attempt: int, base: float, max_delay: float, rand: float) -> float:
    """Seconds before the next attempt after `attempt` failed: doubling from `base`, capped, in [d/2, d]."""
    delay = min(max_delay, base * 2 ** min(attempt - 1, 62))
    return delay / 2 + rand * delay / 2


def event_body(entry: dict[str, object]) -> tuple[str, bytes]:
    """OpenAI's thin event for an outbox entry, and its id (the `webhook-id` of every attempt)."""
    event_id = "evt_" + secrets.token_hex(16)
    event = {"id": event_id, "object": "event", "created_at": entry["at"], "type": entry["type"]}
    return event_id, orjson.dumps({**event, "data": {"id": entry["id"]}})


class Dispatcher:
    def __init__(self, redis: Redis, settings: Settings, interval: float = 0.25) -> None:
        self.redis = redis
        self.settings = settings
        self.interval = interval
        self.store = Store(redis)
        self.by_owner = key_endpoints(settings.webhook_key_urls)
        self.lease = 2 * settings.webhook_timeout + 10
        key = secret_bytes(settings.webhook_secret) if settings.webhook_secret else b""
        self.sender = Sender(key, settings.webhook_allow_private, settings.webhook_timeout)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="llamaq-webhooks")

    async def stop(self) -> None:
        await stop_task(self._task)
        await self.sender.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                busy = await self.tick()
            except (RedisError, OSError):
                logger.warning("webhook delivery paused: Redis unavailable")
                busy = False
            except Exception:
                logger.exception("webhook delivery failed")
                busy = False
            await asyncio.sleep(0 if busy else self.interval)

    async def tick(self) -> bool:
        """Fan out what was announced and make one round of due attempts; True when there was work."""
        ttl = int(self.settings.webhook_max_age) + 86_400
        await self.redis.set(names.webhooks_enabled_key(), 1, ex=int(self.settings.webhook_max_age))
        fanned = 0
        while fanned < CLAIM_LIMIT and (head := await self.store.head()) is not None:
            await self._fan_out(head, ttl)
            fanned += 1
        claimed = await self.store.claim(time.time(), self.lease, CLAIM_LIMIT, secrets.token_hex(8))
        await asyncio.gather(*(self._deliver(one) for one in claimed))
        return bool(fanned or claimed)

    async def _fan_out(self, head: bytes, ttl: int) -> None:
        entry = orjson.loads(head)
        urls = [*self.settings.webhook_urls, *self.by_owner.get(entry.get("owner", ""), [])]
        event_id, body = event_body(entry)
        targets = {f"{event_id}.{index}": url for index, url in enumerate(dict.fromkeys(urls))}
        await self.store.fan_out(head, body, entry.get("owner", ""), ttl, targets)

    async def _deliver(self, claimed: Claimed) -> None:
        event = orjson.loads(claimed.body)
        context = {"event_id": event["id"], "event_type": event["type"], "attempt": claimed.attempt}
        try:
            error = await self.sender.attempt(claimed.url, event["id"], claimed.body)
        except Refused as refused:
            logger.error("webhook endpoint refused: %s", refused, extra=context)
            await self._dead(claimed, event, f"refused: {refused}")
            return
        if error is None:
            await self.store.finish(claimed, Outcome.DELIVERED)
            logger.info("webhook delivered", extra=context)
            return
        now = time.time()
        due = now + retry_delay(
            claimed.attempt, self.settings.webhook_retry_base, self.settings.webhook_retry_max_delay, random.random()
        )
        too_old = due - float(event["created_at"]) > self.settings.webhook_max_age
        if claimed.attempt >= self.settings.webhook_max_attempts or too_old:
            logger.error("webhook given up: %s", error, extra=context)
            await self._dead(claimed, event, error)
            return
        logger.warning("webhook attempt failed: %s", error, extra=context)
        await self.store.finish(claimed, Outcome.RETRIED, due=due, error=error)

    async def _dead(self, claimed: Claimed, event: dict[str, object], error: str) -> None:
        entry = {
            "event_id": event["id"], "type": event["type"], "object_id": event["data"]["id"],  # type: ignore[index]
            "url": claimed.url.split("?", 1)[0], "owner": claimed.owner, "attempts": claimed.attempt,
            "created_at": event["created_at"], "failed_at": int(time.time()), "last_error": error,
        }  # fmt: skip
        await self.store.finish(claimed, Outcome.DEAD_LETTERED, error=error, dead=orjson.dumps(entry))
