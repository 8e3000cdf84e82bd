"""Idempotency-Key: a retried submit gets the job the first one created, and nothing runs twice."""

import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from redis import Redis

from shared import names
from tests.probes import job_of
from tests.stack import MODEL, Stack

pytestmark = pytest.mark.integration

HELLO = [{"role": "user", "content": "Say hello."}]


def _jobs_recorded(redis: Redis) -> int:
    return sum(1 for key in redis.scan_iter(match=names.job_key("job_*")) if key.count(b":") == 2)


def test_a_retried_sync_call_returns_the_same_completion(stack: Stack, client: openai.OpenAI) -> None:
    redis = Redis.from_url(stack.redis_url)
    key = {"Idempotency-Key": secrets.token_hex(8)}
    before = _jobs_recorded(redis)
    # Sent at the same time, as a client's retry can overlap its first attempt.
    with ThreadPoolExecutor(2) as pool:
        replies = list(
            pool.map(
                lambda _: client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=12, extra_headers=key),
                range(2),
            )
        )
    again = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=12, extra_headers=key)
    assert replies[0].id == replies[1].id == again.id
    assert replies[0].choices[0].message.content == again.choices[0].message.content
    assert _jobs_recorded(redis) == before + 1
    assert redis.hget(names.job_key(job_of(again.id)), "attempt") == b"1"
    other = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=12)
    assert other.id != again.id
    redis.close()


def test_a_retried_streaming_call_replays_the_same_job(stack: Stack, client: openai.OpenAI) -> None:
    key = {"Idempotency-Key": secrets.token_hex(8)}

    def text_of(stream: openai.Stream) -> tuple[str, str]:  # type: ignore[type-arg]
        chunks = list(stream)
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return chunks[0].id, content

    first = text_of(
        client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=12, stream=True, extra_headers=key)
    )
    second = text_of(
        client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=12, stream=True, extra_headers=key)
    )
    assert first == second


def test_a_retried_background_submit_returns_the_same_job(stack: Stack) -> None:
    body = {"endpoint": "/v1/chat/completions", "body": {"model": MODEL, "messages": HELLO, "max_tokens": 4}}
    key = {"Idempotency-Key": secrets.token_hex(8)}
    first = httpx.post(f"{stack.base_url}/v1/jobs", json=body, headers=key).json()
    second = httpx.post(f"{stack.base_url}/v1/jobs", json=body, headers=key).json()
    third = httpx.post(f"{stack.base_url}/v1/jobs", json=body, headers={"Idempotency-Key": secrets.token_hex(8)}).json()
    assert first["id"] == second["id"] != third["id"]
    listed = httpx.get(f"{stack.base_url}/v1/jobs", params={"limit": 100}).json()["data"]
    assert [job["id"] for job in listed].count(first["id"]) == 1
