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
from urllib.parse import urlsplit

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
from shared.webhooks import thin_event

logger = logging.getLogger(__name__)

FAN_OUT_LIMIT = 32  # outbox entries a round takes
IN_FLIGHT_LIMIT = 32  # attempts one API makes at once
FLAG_REFRESH_SECONDS = 10.0


def retry_delay(attempt: int, base: float, max_delay: float, rand: float) -> float:
    """Seconds before the next attempt after `attempt` failed: doubling from `base`, capped, in [d/2, d]."""
    delay = min(max_delay, base * 2 ** min(attempt - 1, 62))
    return delay / 2 + rand * delay / 2


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
        self._in_flight: set[asyncio.Task[None]] = set()
        self._flag_until = 0.0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="llamaq-webhooks")

    async def stop(self) -> None:
        """Attempts under way are dropped: their leases run out and an API sends them again."""
        await stop_task(self._task)
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self.sender.aclose()

    async def _loop(self) -> None:
        while True:
            busy = False
            try:
                busy = await self.tick(wait=False)
            except (RedisError, OSError):
                logger.warning("webhook delivery paused: Redis unavailable")
            except Exception:
                logger.exception("webhook delivery failed")
            await asyncio.sleep(0 if busy else self.interval)

    async def tick(self, wait: bool = True) -> bool:
        """Fan out what was announced and start the due attempts (`wait`: until they end); True when busy."""
        if time.monotonic() >= self._flag_until:
            await self.redis.set(names.webhooks_enabled_key(), 1, ex=max(1, int(self.settings.webhook_max_age)))
            self._flag_until = time.monotonic() + FLAG_REFRESH_SECONDS
        fanned = 0
        while fanned < FAN_OUT_LIMIT and (head := await self.store.head()) is not None:
            await self._fan_out(head, int(self.settings.webhook_max_age) + 86_400)
            fanned += 1
        room = IN_FLIGHT_LIMIT - len(self._in_flight)
        claimed = await self.store.claim(time.time(), self.lease, room, secrets.token_hex(8)) if room > 0 else []
        started = [self._start(one) for one in claimed]
        if wait:
            await asyncio.gather(*started)
        return bool(fanned or claimed)

    async def _fan_out(self, head: bytes, ttl: int) -> None:
        entry = orjson.loads(head)
        urls = [*self.settings.webhook_urls, *self.by_owner.get(entry.get("owner", ""), [])]
        event_id, body = thin_event(entry)
        targets = {f"{event_id}.{index}": url for index, url in enumerate(dict.fromkeys(urls))}
        await self.store.fan_out(head, body, entry.get("owner", ""), ttl, targets)

    def _start(self, claimed: Claimed) -> asyncio.Task[None]:
        task = asyncio.create_task(self._deliver(claimed), name="llamaq-webhook-attempt")
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return task

    async def _deliver(self, claimed: Claimed) -> None:
        event = orjson.loads(claimed.body)
        context = {
            "event_id": event["id"], "event_type": event["type"], "object_id": event["data"]["id"],
            "attempt": claimed.attempt,
        }  # fmt: skip
        try:
            error = await self.sender.attempt(claimed.url, event["id"], claimed.body)
            if error is None:
                await self.store.finish(claimed, Outcome.DELIVERED)
                logger.info("webhook delivered", extra=context)
            elif (due := self._next_due(claimed.attempt, float(event["created_at"]))) is None:
                logger.error("webhook given up: %s", error, extra=context)
                await self._dead(claimed, event, error)
            else:
                logger.warning("webhook attempt failed: %s", error, extra=context)
                await self.store.finish(claimed, Outcome.RETRIED, due=due, error=error)
        except Refused as refused:
            logger.error("webhook endpoint refused: %s", refused, extra=context)
            await self._dead(claimed, event, f"refused: {refused}")
        except (RedisError, OSError):
            logger.warning("webhook attempt not recorded: Redis unavailable (sent again later)", extra=context)
        except Exception:
            logger.exception("webhook attempt failed", extra=context)

    def _next_due(self, attempt: int, created_at: float) -> float | None:
        """When to try again after failed attempt number `attempt`; None once out of attempts or time."""
        settings = self.settings
        due = time.time() + retry_delay(
            attempt, settings.webhook_retry_base, settings.webhook_retry_max_delay, random.random()
        )
        if attempt >= settings.webhook_max_attempts or due - created_at > settings.webhook_max_age:
            return None
        return due

    async def _dead(self, claimed: Claimed, event: dict[str, object], error: str) -> None:
        entry = {
            "event_id": event["id"], "type": event["type"], "object_id": event["data"]["id"],  # type: ignore[index]
            "url": origin(claimed.url), "owner": claimed.owner, "attempts": claimed.attempt,
            "created_at": event["created_at"], "failed_at": int(time.time()), "last_error": error,
        }  # fmt: skip
        await self.store.finish(claimed, Outcome.DEAD_LETTERED, error=error, dead=orjson.dumps(entry))


def origin(url: str) -> str:
    """An endpoint as dead letters show it: scheme, host and port (paths and queries may carry tokens)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
