"""Redis goes away and comes back: fast 503s meanwhile, no crash, recovery without restarts, AOF keeps the queue."""

import time
from pathlib import Path

import httpx
import openai
import pytest
from redis import Redis

from shared import names, rqcontract
from shared.redis_server import RedisServer
from tests.integration.test_backpressure import COUNTING, TERMINAL
from tests.probes import wait_for
from tests.stack import MODEL, running_stack

pytestmark = pytest.mark.integration


def _submit(base_url: str, max_tokens: int) -> str:
    body = {"model": MODEL, "messages": COUNTING, "max_tokens": max_tokens, "temperature": 0}
    reply = httpx.post(f"{base_url}/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": body}, timeout=10)
    assert reply.status_code == 202
    return str(reply.json()["id"])


def test_redis_down_and_back(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", persist=True)
    server.start()
    try:
        with running_stack(server.url, tmp_path / "logs", workers=1) as stack:
            redis = Redis.from_url(server.url)
            client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=30)
            streaming = iter(
                client.chat.completions.create(
                    model=MODEL, messages=COUNTING, max_tokens=1000, temperature=0, stream=True
                )
            )
            for _ in range(4):
                next(streaming)
            jobs = [_submit(stack.base_url, 120) for _ in range(4)]
            waiting = [j.decode() for j in redis.lrange(rqcontract.queue_key(MODEL, names.BATCH), 0, -1)]
            assert len(waiting) >= 2
            redis.close()
            server.stop()

            # The stream already under way ends with an error event, not a cut connection or a hang.
            with pytest.raises(openai.APIError, match="unavailable"):
                for _ in streaming:
                    pass
            _while_down(stack.base_url)
            assert stack.api is not None and stack.api.poll() is None
            assert all(worker.poll() is None for worker in stack.workers)

            server.start()
            stack.wait_workers(1)
            redis = Redis.from_url(server.url)
            # Appended to the AOF before the stop: still queued, or already taken again.
            assert all(redis.exists(names.job_key(job_id)) for job_id in waiting)
            # Ready again means serving again: the first request after readiness is answered.
            hello = [{"role": "user", "content": "Hi"}]
            reply = client.chat.completions.create(model=MODEL, messages=hello, max_tokens=4)
            assert reply.choices[0].finish_reason in ("stop", "length")
            for job_id in jobs:
                final = wait_for(
                    lambda job_id=job_id: (
                        (j := httpx.get(f"{stack.base_url}/v1/jobs/{job_id}").json())["status"] in TERMINAL and j
                    ),
                    f"{job_id} finished",
                    timeout=120,
                )
                assert final["status"] == "completed", final
            redis.close()
    finally:
        server.stop()


def _while_down(base_url: str) -> None:
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    for _ in range(3):
        started = time.monotonic()
        reply = httpx.post(f"{base_url}/v1/chat/completions", json=chat, timeout=10)
        elapsed = time.monotonic() - started
        assert reply.status_code == 503, reply.text
        assert reply.json()["error"]["type"] == "server_error"
        print(f"503 while Redis is down after {elapsed * 1000:.0f} ms")
    job = {"endpoint": "/v1/chat/completions", "body": chat}
    assert httpx.post(f"{base_url}/v1/jobs", json=job, timeout=10).status_code == 503
    assert httpx.get(f"{base_url}/health/ready", timeout=10).status_code == 503
    assert httpx.get(f"{base_url}/health/live", timeout=10).status_code == 200
    time.sleep(2)  # long enough for a worker that would crash on a lost connection to have done so
