"""Background jobs on a real Redis and real workers: result, event stream, cancel, and worker death."""

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from shared import names
from tests.probes import job_events, wait_for
from tests.spec import assert_conforms
from tests.stack import MODEL, Stack, running_stack

pytestmark = pytest.mark.integration

COUNTING = {"model": MODEL, "prompt": "1, 2, 3, 4, 5,", "temperature": 0}


def _submit(http: httpx.Client, body: dict[str, Any], endpoint: str = "/v1/completions") -> dict[str, Any]:
    response = http.post("/v1/jobs", json={"endpoint": endpoint, "body": body})
    assert response.status_code == 202, response.text
    return response.json()


def _until(http: httpx.Client, job_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 90) -> dict:
    def reached() -> dict | None:
        job = http.get(f"/v1/jobs/{job_id}").json()
        return job if done(job) else None

    return wait_for(reached, f"job {job_id} to reach the expected state", timeout, interval=0.02)


def _events(http: httpx.Client, job_id: str, last_event_id: int | None = None) -> list[tuple[int, str, dict]]:
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=90) as response:
        assert response.status_code == 200
        return job_events(response.iter_lines())


@pytest.fixture
def http(stack: Stack) -> httpx.Client:
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        yield client


def test_a_chat_job_completes_with_the_full_openai_response(http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8}
    job = _submit(http, body, "/v1/chat/completions")
    assert job["status"] in ("queued", "in_progress")

    done = _until(http, job["id"], lambda j: j["status"] == "completed")
    assert_conforms("CreateChatCompletionResponse", done["response"])
    assert done["response"]["usage"]["completion_tokens"] <= 8
    assert done["attempts"] == 1 and done["started_at"] >= done["created_at"]
    assert [item["id"] for item in http.get("/v1/jobs", params={"limit": 1}).json()["data"]] == [job["id"]]


def test_events_stream_live_and_resume_without_gap_or_duplicate(http: httpx.Client) -> None:
    job = _submit(http, {**COUNTING, "max_tokens": 40})
    live = _events(http, job["id"])

    seqs = [seq for seq, _, _ in live]
    assert seqs == list(range(1, len(seqs) + 1))
    assert live[0][1] == "started" and live[-1][1] == "done"
    text = "".join(event["x"] for _, name, event in live if name == "token")
    assert text == live[-1][2]["response"]["choices"][0]["text"]
    assert _events(http, job["id"], last_event_id=10) == live[10:]


def test_cancel_stops_a_running_job_within_a_token_and_a_queued_job_never_runs(http: httpx.Client) -> None:
    running = _submit(http, {**COUNTING, "max_tokens": 1000})
    _until(http, running["id"], lambda j: j["tokens_generated"] >= 3)
    waiting = _submit(http, {**COUNTING, "max_tokens": 5})
    assert waiting["status"] == "queued" and waiting["queue_position"] == 0

    cancelled = http.post(f"/v1/jobs/{waiting['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    at_cancel = http.post(f"/v1/jobs/{running['id']}/cancel").json()["tokens_generated"]
    stopped = _until(http, running["id"], lambda j: j["status"] == "cancelled")

    # The worker reads the cancel flag with the next token it sends, while decoding the one after.
    assert stopped["tokens_generated"] - at_cancel <= 2
    assert stopped["partial_response"]["usage"]["completion_tokens"] < 1000
    assert stopped["error"]["code"] == "cancelled"
    after = _submit(http, {**COUNTING, "max_tokens": 2})
    _until(http, after["id"], lambda j: j["status"] == "completed")
    never = http.get(f"/v1/jobs/{waiting['id']}").json()
    assert (never["status"], never["started_at"], never["attempts"]) == ("cancelled", None, 0)


def _kill_worker_of(stack: Stack, redis: Redis, job_id: str) -> str:
    name = redis.hget(names.job_key(job_id), "worker").decode()
    pid = int(name.split(".")[-2])
    (process,) = [worker for worker in stack.workers if worker.pid == pid]
    os.kill(pid, signal.SIGKILL)
    process.wait(10)
    return name


def test_a_job_whose_worker_dies_is_retried_elsewhere_then_fails_when_every_attempt_dies(
    fresh_redis_url: str, tmp_path: Path
) -> None:
    settings = {"heartbeat_ttl": "2", "heartbeat_interval": "0.5", "job_retries": "1"}
    with running_stack(fresh_redis_url, tmp_path / "logs", workers=2, **settings) as stack:
        redis = Redis.from_url(fresh_redis_url)
        http = httpx.Client(base_url=stack.base_url, timeout=30)
        try:
            job = _submit(http, {**COUNTING, "max_tokens": 300})
            _until(http, job["id"], lambda j: j["tokens_generated"] >= 2)
            first = _kill_worker_of(stack, redis, job["id"])
            done = _until(http, job["id"], lambda j: j["status"] in ("completed", "failed"))
            assert done["status"] == "completed" and done["attempts"] == 2
            events = _events(http, job["id"])
            kinds = [name for _, name, _ in events]
            assert kinds.count("retry") == 1 and kinds.count("started") == 2 and kinds[-1] == "done"
            workers = [event["worker"] for _, name, event in events if name == "started"]
            assert workers[0] == first != workers[1]
            retried = kinds.index("retry")
            second = "".join(event["x"] for _, name, event in events[retried:] if name == "token")
            assert second == done["response"]["choices"][0]["text"]  # the result is one attempt's, not a splice

            stack.add_worker()
            stack.wait_workers(2)
            doomed = _submit(http, {**COUNTING, "max_tokens": 300})
            _until(http, doomed["id"], lambda j: j["tokens_generated"] >= 2)
            _kill_worker_of(stack, redis, doomed["id"])
            _until(http, doomed["id"], lambda j: j["attempts"] == 2 and j["tokens_generated"] >= 2)
            _kill_worker_of(stack, redis, doomed["id"])
            failed = _until(http, doomed["id"], lambda j: j["status"] in ("completed", "failed"))
            assert failed["status"] == "failed" and failed["attempts"] == 2
            assert failed["error"]["code"] == "worker_lost" and failed["error"]["type"] == "server_error"
        finally:
            http.close()
            redis.close()
