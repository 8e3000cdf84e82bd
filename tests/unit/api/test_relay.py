"""api/relay.py on fakeredis: late readers, duplicates, gaps, deadlines and orphaned jobs."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest

from api.relay import Follower, Relay
from shared import events, names
from shared.emission import emission
from shared.errors import Unavailable
from shared.scripts import EMIT
from shared.states import Status
from tests.fakes import async_redis, make_settings

JOB = "job_" + "cd" * 16
SETTINGS = make_settings()


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def sync(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    client = fakeredis.FakeRedis(server=server)
    running = {"status": "in_progress", "lane": names.INTERACTIVE, "attempt": 1, "seq": 0, "model": "m"}
    client.hset(names.job_key(JOB), mapping=running)
    client.set(names.heartbeat_key(JOB), "w1", ex=60)
    return client


@pytest.fixture
async def relay(server: fakeredis.FakeServer) -> AsyncIterator[Relay]:
    client = async_redis(server)
    relay = Relay(client, SETTINGS)
    await relay.start()
    yield relay
    await relay.stop()
    await client.aclose()


def emit(sync: fakeredis.FakeRedis, event: events.Event, terminal: Status | None = None) -> None:
    keys, args = emission(SETTINGS, JOB, event, terminal=terminal)
    assert int(sync.register_script(EMIT)(keys=keys, args=args)) >= 0


def emit_story(sync: fakeredis.FakeRedis, tokens: int = 3) -> None:
    emit(sync, events.Started("w1", 4, 1))
    for index in range(tokens):
        emit(sync, events.Token(f"t{index}"))
    emit(sync, events.Done({"id": "x"}), "completed")


async def read(follower: Follower, count: int, poll: float = 1.0) -> list[tuple[int, dict[str, Any]]]:
    loop = asyncio.get_running_loop()
    got = []
    for _ in range(count):
        event = await follower.next(loop.time() + 10, poll=poll)
        assert event is not None
        got.append(event)
    return got


async def nothing_more(follower: Follower) -> bool:
    return await follower.next(asyncio.get_running_loop().time() + 0.3, poll=0.1) is None


async def test_a_reader_that_starts_after_the_job_ended_gets_every_event(
    relay: Relay, sync: fakeredis.FakeRedis
) -> None:
    emit_story(sync, tokens=40)
    async with relay.follow(JOB) as follower:
        got = await read(follower, 42)
        assert await nothing_more(follower)
    assert [seq for seq, _ in got] == list(range(1, 43))
    assert [event.text for _, event in got[1:-1]] == [f"t{i}" for i in range(40)]
    assert (got[0][1].kind, got[-1][1].kind) == (events.Kind.STARTED, events.Kind.DONE)


async def test_events_both_live_and_replayed_arrive_once(relay: Relay, sync: fakeredis.FakeRedis) -> None:
    async with relay.follow(JOB) as follower:
        emit_story(sync)
        await asyncio.sleep(0.05)  # let the live copies reach the follower's queue too
        got = await read(follower, 5)
        assert await nothing_more(follower)
    assert [seq for seq, _ in got] == [1, 2, 3, 4, 5]


async def test_events_missing_from_the_live_channel_are_filled_from_the_stream(
    relay: Relay, sync: fakeredis.FakeRedis
) -> None:
    async with relay.follow(JOB) as follower:
        assert await nothing_more(follower)
        # Two events reach the stream but their live messages are lost; the third is published.
        for seq in (1, 2):
            sync.xadd(names.events_key(JOB), {"s": seq, "e": events.encode(events.Token(f"lost{seq}"))})
        sync.hset(names.job_key(JOB), "seq", 2)
        emit(sync, events.Token("live3"))
        # A long poll: only the gap seen on the live channel can make the missing events arrive now.
        got = await asyncio.wait_for(read(follower, 3, poll=3600), timeout=10)
    assert [(seq, event.text) for seq, event in got] == [(1, "lost1"), (2, "lost2"), (3, "live3")]


async def test_a_reader_resumes_after_the_last_event_it_saw(relay: Relay, sync: fakeredis.FakeRedis) -> None:
    emit_story(sync)
    async with relay.follow(JOB, after_seq=3) as follower:
        got = await read(follower, 2)
        assert await nothing_more(follower)
    assert [seq for seq, _ in got] == [4, 5]


async def test_two_readers_of_one_job_each_get_every_event(relay: Relay, sync: fakeredis.FakeRedis) -> None:
    async with relay.follow(JOB) as first, relay.follow(JOB) as second:
        emit_story(sync)
        assert [s for s, _ in await read(first, 5)] == [s for s, _ in await read(second, 5)] == [1, 2, 3, 4, 5]


async def test_the_deadline_is_honoured(relay: Relay, sync: fakeredis.FakeRedis) -> None:
    async with relay.follow(JOB) as follower:
        loop = asyncio.get_running_loop()
        assert await follower.next(loop.time() + 0.3, poll=0.05) is None
        assert await follower.next(loop.time() - 1) is None
    assert sync.hget(names.job_key(JOB), "status") == b"in_progress"


async def test_an_orphaned_interactive_job_ends_with_an_error_event(relay: Relay, sync: fakeredis.FakeRedis) -> None:
    emit(sync, events.Token("partial"))
    sync.delete(names.heartbeat_key(JOB))
    async with relay.follow(JOB) as follower:
        got = await read(follower, 2, poll=0.05)
        assert await nothing_more(follower)
    seq, event = got[1]
    assert (seq, event.kind, event.status) == (2, events.Kind.ERROR, 503)
    assert event.error["code"] == "worker_lost"
    assert sync.hget(names.job_key(JOB), "status") == b"failed"


async def test_an_orphaned_batch_job_is_left_to_the_reaper(relay: Relay, sync: fakeredis.FakeRedis) -> None:
    sync.hset(names.job_key(JOB), "lane", names.BATCH)
    sync.delete(names.heartbeat_key(JOB))
    async with relay.follow(JOB) as follower:
        assert await nothing_more(follower)
    assert sync.hget(names.job_key(JOB), "status") == b"in_progress"


async def test_following_fails_fast_while_redis_is_unreachable(server: fakeredis.FakeServer) -> None:
    client = async_redis(server)
    relay = Relay(client, SETTINGS)
    with pytest.raises(Unavailable):
        async with relay.follow(JOB):
            pass
    await client.aclose()
