"""A reader that starts late still gets every token, in order, once: the replay stream backs pub/sub."""

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from api.relay import Relay
from shared import events, names
from shared.settings import Settings
from tests.probes import job_of, wait_for
from tests.stack import MODEL, Stack

pytestmark = pytest.mark.integration

STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def content_of(chunks: Iterator[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def wait_for_tokens(redis: Redis, job: str, count: int, timeout: float = 30.0) -> None:
    def generated() -> bool:
        return int(redis.hget(names.job_key(job), "tokens") or 0) >= count

    wait_for(generated, f"job {job} to reach {count} tokens", timeout, interval=0.02)


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """Freeze a worker mid-job (well inside its heartbeat TTL), and always let it go on."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def follow_late(redis_url: str, job: str, resume: Any) -> tuple[bytes, list[tuple[int, dict[str, Any]]]]:
    """Subscribe to a job already under way, read what it has, `resume` its worker, read to the end."""
    redis = AsyncRedis.from_url(redis_url)
    relay = Relay(redis, Settings(redis_url=redis_url))
    await relay.start()
    got = []
    try:
        async with relay.follow(job) as follower:
            status = await redis.hget(names.job_key(job), "status")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while not got or not got[-1][1].kind.ends_job:
                event = await follower.next(deadline)
                assert event is not None, "no terminal event before the deadline"
                got.append(event)
                if len(got) == 1:
                    resume()
    finally:
        await relay.stop()
        await redis.aclose()
    return status, got


def test_relay_attached_mid_job_gets_every_token(stack: Stack, client: openai.OpenAI) -> None:
    worker = stack.workers[0]
    stream = client.chat.completions.create(model=MODEL, messages=STORY, max_tokens=128, seed=2, stream=True)
    chunks = iter(stream)
    job = job_of(next(chunks).id)
    with Redis.from_url(stack.redis_url) as redis:
        wait_for_tokens(redis, job, 5)
        with paused(worker.pid):
            # The worker is frozen with tokens already published: this reader is late for them for sure.
            already = int(redis.hget(names.job_key(job), "seq"))
            status, got = asyncio.run(follow_late(stack.redis_url, job, lambda: os.kill(worker.pid, signal.SIGCONT)))
        record = redis.hgetall(names.job_key(job))
    assert status == b"in_progress" and already >= 6, "the reader attached while the job ran"
    assert [seq for seq, _ in got] == list(range(1, int(record[b"seq"]) + 1)), "every event, in order, once"
    kinds = [event.kind for _, event in got]
    assert kinds[0] == events.Kind.STARTED and kinds[-1] == events.Kind.DONE
    assert kinds.count(events.Kind.DONE) == 1 and events.Kind.ERROR not in kinds
    tokens = [event.text for _, event in got if isinstance(event, events.Token)]
    assert len(tokens) == int(record[b"tokens"])
    response = got[-1][1].response
    assert "".join(tokens) == response["choices"][0]["message"]["content"]
    assert 5 < response["usage"]["completion_tokens"] <= 128
    # The client, which read nothing past its first chunk all this time, gets the same text.
    assert content_of(chunks) == response["choices"][0]["message"]["content"]
    assert orjson.loads(record[b"terminal"])["response"] == response


def test_retried_request_reads_the_first_attempts_tokens(client: openai.OpenAI) -> None:
    """The same Idempotency-Key follows the job the first request created, from its first event."""
    key = {"Idempotency-Key": f"late-reader-{time.time_ns()}"}
    request: dict[str, Any] = {"model": MODEL, "messages": STORY, "max_tokens": 32, "seed": 3}
    first = iter(client.chat.completions.create(**request, stream=True, extra_headers=key))
    opening = next(first)
    second = list(client.chat.completions.create(**request, stream=True, extra_headers=key))
    rest = list(first)
    assert {c.id for c in second} == {opening.id} == {c.id for c in rest}
    text = content_of(iter(rest))
    assert content_of(iter(second)) == text
    assert second[-1].choices[0].finish_reason == rest[-1].choices[0].finish_reason == "length"
    after = client.chat.completions.create(**request, extra_headers=key)
    assert after.id == opening.id and after.choices[0].message.content == text
