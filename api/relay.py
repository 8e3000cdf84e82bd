"""Token relay: one pub/sub connection for the API, backed by each job's replay stream.

A follower subscribes first, then reads the replay stream, then takes live messages; sequence
numbers drop duplicates and reveal gaps, which are filled from the stream. When nothing arrives
for a while it re-reads the stream and checks that a worker is still alive behind the job.
"""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.cancel import fail_lost
from api.stopping import stop_task
from shared import events, names
from shared.errors import Unavailable
from shared.scripts import ORPHANED
from shared.settings import Settings

logger = logging.getLogger(__name__)

Event = tuple[int, events.Event]  # (sequence number, event)


class Relay:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._pubsub = redis.pubsub()
        self._followers: dict[bytes, set[asyncio.Queue[bytes]]] = {}
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._orphaned = redis.register_script(ORPHANED)
        self._task: asyncio.Task[None] | None = None
        # False while the pub/sub connection is down: followers then fail fast with 503 instead of waiting.
        self.connected = False
        # Keeps the connection subscribed (and so readable) while no job is followed.
        self._anchor = f"{names.PREFIX}:relay:{secrets.token_hex(6)}"

    async def start(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.subscribe(self._anchor)
            self.connected = True
        self._task = asyncio.create_task(self._listen(), name="llamaq-relay")

    async def stop(self) -> None:
        await stop_task(self._task)
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()

    async def _listen(self) -> None:
        while True:
            try:
                if self._pubsub.connection is None:
                    await self._pubsub.subscribe(self._anchor)
                message = await self._pubsub.get_message(timeout=1.0)
                self.connected = True
            except (RedisError, OSError):
                if self.connected:
                    logger.warning("relay lost its Redis connection; reconnecting")
                self.connected = False
                await asyncio.sleep(0.5)
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        if message["type"] == "subscribe":
            confirmed = self._confirmed.get(channel)
            if confirmed:
                confirmed.set()
        elif message["type"] == "message":
            for queue in self._followers.get(channel, ()):
                queue.put_nowait(message["data"])

    def ensure_connected(self) -> None:
        """503 while the relay has no Redis connection: nobody could follow a job's events."""
        if not self.connected:
            raise Unavailable("The queue (Redis) is unavailable; retry shortly.")

    @contextlib.asynccontextmanager
    async def follow(self, job_id: str, after_seq: int = 0) -> AsyncIterator["Follower"]:
        """Subscribe (confirmed by Redis) before yielding, so no event published later is missed."""
        self.ensure_connected()
        channel = names.live_channel(job_id).encode()
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        first = channel not in self._followers
        self._followers.setdefault(channel, set()).add(queue)
        try:
            if first:
                confirmed = self._confirmed[channel] = asyncio.Event()
                await self._pubsub.subscribe(channel)
                try:
                    await asyncio.wait_for(confirmed.wait(), timeout=2)
                except TimeoutError as exc:
                    raise Unavailable("Redis did not confirm the subscription in time.") from exc
            yield Follower(self, job_id, queue, after_seq)
        finally:
            followers = self._followers.get(channel, set())
            followers.discard(queue)
            if not followers:
                self._followers.pop(channel, None)
                self._confirmed.pop(channel, None)
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(channel)

    async def replay(self, job_id: str, after_seq: int, start: bytes = b"-") -> tuple[list[Event], bytes]:
        entries = await self.redis.xrange(names.events_key(job_id), min=start)
        found, last_id = [], start
        for entry_id, fields in entries:
            last_id = b"(" + entry_id
            seq, event = events.decode_entry(fields)
            if seq > after_seq:
                found.append((seq, event))
        return found, last_id

    async def fail_if_orphaned(self, job_id: str) -> None:
        """An interactive job whose worker stopped heartbeating ends with an error, not a hang."""
        keys = [names.job_key(job_id), names.heartbeat_key(job_id)]
        attempt = int(await self._orphaned(keys=keys, args=[]))
        if attempt <= 0:
            return
        lane = await self.redis.hget(names.job_key(job_id), "lane")
        if lane != names.INTERACTIVE.encode():
            return
        await fail_lost(self.redis, self.settings, job_id, attempt)


class Follower:
    """Reads one job's events in order, exactly once each, with a deadline on every wait."""

    def __init__(self, relay: Relay, job_id: str, queue: asyncio.Queue[bytes], after_seq: int) -> None:
        self._relay = relay
        self.job_id = job_id
        self._queue = queue
        self.last_seq = after_seq
        self._stream_pos = b"-"
        self._backlog: list[Event] = []
        self._replayed = False

    async def next(self, deadline: float, poll: float = 1.0) -> Event | None:
        """The next event, or None when `deadline` (event-loop time) passes first."""
        loop = asyncio.get_running_loop()
        if not self._replayed:
            self._replayed = True
            await self._fill_from_stream()
        while not self._backlog:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                raw = await asyncio.wait_for(self._queue.get(), timeout=min(poll, remaining))
            except TimeoutError:
                await self._fill_from_stream()
                if not self._backlog:
                    await self._relay.fail_if_orphaned(self.job_id)
                continue
            seq, event = events.decode(raw)
            if seq == self.last_seq + 1:
                self._backlog.append((seq, event))
            elif seq > self.last_seq + 1:
                await self._fill_from_stream()
        seq, event = self._backlog.pop(0)
        self.last_seq = seq
        return seq, event

    async def _fill_from_stream(self) -> None:
        after = self._backlog[-1][0] if self._backlog else self.last_seq
        found, self._stream_pos = await self._relay.replay(self.job_id, after, self._stream_pos)
        self._backlog.extend(found)
