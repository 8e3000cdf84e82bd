"""Faults against real processes: a worker killed mid-generation, and jobs that outlive their deadlines."""

import os
import re
import signal
import time
from pathlib import Path

import httpx
import openai
import pytest
from redis import Redis

from shared import names, rqcontract
from tests.integration.test_backpressure import COUNTING, TERMINAL, record
from tests.probes import job_of, wait_for
from tests.stack import MODEL, Stack, running_stack

pytestmark = pytest.mark.integration


def worker_pid(redis: Redis, job_id: str) -> int:
    """The pid of the worker running `job_id` (worker names are `<host>.<pid>.<random>`)."""
    name = wait_for(lambda: record(redis, job_id).get("worker"), "job claimed")
    return int(name.rsplit(".", 2)[1])


def started_registry(redis: Redis) -> int:
    return sum(redis.zcard(rqcontract.started_key(MODEL, lane)) for lane in names.LANES)


def test_a_worker_killed_mid_generation(fresh_redis_url: str, logs_dir: Path) -> None:
    """Streaming: an in-stream error and a closed stream. Background: retried to completion on another worker."""
    with running_stack(fresh_redis_url, logs_dir, workers=2, heartbeat_ttl="3") as stack:
        redis = Redis.from_url(fresh_redis_url)
        client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=30)
        _streaming_client_gets_an_error_event(client, redis)
        stack.add_worker()
        stack.wait_workers(2)
        _background_job_completes_on_another_worker(stack, redis)
        redis.close()


def _streaming_client_gets_an_error_event(client: openai.OpenAI, redis: Redis) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=COUNTING, max_tokens=1000, temperature=0, stream=True)
    ids, text, killed_at = set(), [], 0.0
    with pytest.raises(openai.APIError) as failure:
        for chunk in stream:
            ids.add(chunk.id)
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
                if len(text) == 5:
                    os.kill(worker_pid(redis, job_of(chunk.id)), signal.SIGKILL)
                    killed_at = time.monotonic()
    print(f"orphan reported to the stream {time.monotonic() - killed_at:.1f} s after the kill")
    # The client's read timeout (30 s) bounds the wait: the orphan was detected before it.
    assert "stopped before it finished" in failure.value.message
    assert len(ids) == 1 and len(text) >= 5
    job_id = job_of(ids.pop())
    state = record(redis, job_id)
    assert state["status"] == "failed" and state["attempt"] == "1"
    assert '"worker_lost"' in state["terminal"]
    # One attempt only: every token relayed came from it, nothing was spliced from a retry.
    attempts = {e for _, fields in redis.xrange(names.events_key(job_id)) if b'"k":"s"' in (e := fields[b"e"])}
    assert len(attempts) == 1
    wait_for(lambda: started_registry(redis) == 0, "started registry emptied", timeout=30)


def _background_job_completes_on_another_worker(stack: Stack, redis: Redis) -> None:
    body = {"model": MODEL, "messages": COUNTING, "max_tokens": 300, "temperature": 0}
    submitted = httpx.post(f"{stack.base_url}/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": body})
    assert submitted.status_code == 202
    job_id = submitted.json()["id"]
    wait_for(lambda: int(record(redis, job_id).get("tokens", 0)) >= 5, "job generating")
    # The whole process group, as a container runtime or an OOM kill of a session would.
    os.killpg(worker_pid(redis, job_id), signal.SIGKILL)
    final = wait_for(
        lambda: (job := httpx.get(f"{stack.base_url}/v1/jobs/{job_id}").json())["status"] in TERMINAL and job,
        "retried job finished",
        timeout=90,
    )
    assert final["status"] == "completed" and final["attempts"] == 2
    assert final["response"]["usage"]["completion_tokens"] == 300
    assert final["response"]["choices"][0]["message"]["content"].startswith("1, 2, 3")
    wait_for(lambda: started_registry(redis) == 0, "started registry emptied", timeout=30)


def test_deadlines(fresh_redis_url: str, logs_dir: Path) -> None:
    """A sync call past its wait deadline gets an error naming the job; the job ends at its time limit."""
    with running_stack(fresh_redis_url, logs_dir, workers=1, sync_timeout="1", job_timeout="2") as stack:
        client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=30)
        with pytest.raises(openai.APIStatusError) as waited:
            client.chat.completions.create(model=MODEL, messages=COUNTING, max_tokens=1000, temperature=0)
        assert waited.value.status_code == 504 and waited.value.body["code"] == "timeout"  # type: ignore[index]
        found = re.search(r"job_[0-9a-f]{32}", waited.value.message)
        assert found is not None
        job_id = found.group(0)
        final = wait_for(
            lambda: (job := httpx.get(f"{stack.base_url}/v1/jobs/{job_id}").json())["status"] in TERMINAL and job,
            "job ended at its time limit",
        )
        assert final["status"] == "failed" and final["error"]["code"] == "job_timeout"
        partial = final["partial_response"]
        assert partial["choices"][0]["message"]["content"].startswith("1, 2, 3")
        assert 0 < partial["usage"]["completion_tokens"] < 1000
