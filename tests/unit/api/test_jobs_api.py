"""POST/GET/cancel/list /v1/jobs and the job event stream, over fakeredis with the step worker."""

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from shared import names, rqcontract
from shared.payload import JobPayload, Params
from tests.fakes import MODEL
from tests.harness import CHAT, SyncApp, sync_app
from tests.probes import job_events
from tests.spec import assert_conforms
from worker.context import WorkerContext
from worker.sink import Scripts
from worker.task import run


@pytest.fixture
def jobs() -> Iterator[SyncApp]:
    with sync_app() as app:
        yield app


def test_submit_answers_202_with_the_job_and_its_place_in_the_queue(jobs: SyncApp) -> None:
    first = jobs.submit()
    request = {"endpoint": "/v1/chat/completions", "body": CHAT, "metadata": {"user": "u1"}}
    second = jobs.http.post("/v1/jobs", json=request)

    assert second.status_code == 202
    body = second.json()
    assert re.fullmatch(r"job_[0-9a-f]{32}", body["id"])
    assert body["status"] == "queued" and body["object"] == "job"
    assert isinstance(body["created_at"], int)
    assert body["metadata"] == {"user": "u1"}
    assert (first["queue_position"], body["queue_position"]) == (0, 1)
    assert 0 < first["estimated_wait_seconds"] < body["estimated_wait_seconds"]
    assert body["started_at"] is None and body["response"] is None and body["error"] is None


def test_interactive_work_counts_as_ahead_of_a_background_job(jobs: SyncApp) -> None:
    jobs.redis.rpush(rqcontract.queue_key(MODEL, names.INTERACTIVE), "job_interactive1", "job_interactive2")

    assert jobs.submit()["queue_position"] == 2


BAD_BODIES = [
    ({**CHAT, "messages": []}, "messages", None),
    ({**CHAT, "temperature": 7}, "temperature", None),
    ({**CHAT, "frobnicate": 1}, "frobnicate", None),
    ({"messages": CHAT["messages"]}, "model", None),
    ({**CHAT, "max_tokens": 10**6}, "max_tokens", None),
    ({**CHAT, "messages": [{"role": "user", "content": "word " * 20_000}]}, "messages", "context_length_exceeded"),
]


@pytest.mark.parametrize(("body", "param", "code"), BAD_BODIES)
def test_a_bad_body_is_refused_at_submit_exactly_as_its_endpoint_refuses_it(
    jobs: SyncApp, body: dict[str, Any], param: str, code: str | None
) -> None:
    direct = jobs.http.post("/v1/chat/completions", json=body)
    submitted = jobs.http.post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": body})

    assert direct.status_code == submitted.status_code == 400
    assert direct.json()["error"]["param"] == param
    error = submitted.json()["error"]
    assert error["param"] == f"body.{param}"
    assert (error["type"], error["code"]) == ("invalid_request_error", code)
    assert direct.json()["error"]["code"] == code
    assert jobs.redis.llen(rqcontract.queue_key(MODEL, names.BATCH)) == 0
    assert jobs.http.get("/v1/jobs").json()["data"] == []


def test_streaming_is_refused_for_background_work(jobs: SyncApp) -> None:
    response = jobs.http.post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": {**CHAT, "stream": True}})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "body.stream"


def test_unknown_model_and_endpoint_are_refused(jobs: SyncApp) -> None:
    unknown = jobs.http.post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": {**CHAT, "model": "nope"}})
    endpoint = jobs.http.post("/v1/jobs", json={"endpoint": "/v1/responses", "body": CHAT})

    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert endpoint.status_code == 400 and endpoint.json()["error"]["param"] == "endpoint"


def test_status_follows_the_job_from_queued_to_completed(jobs: SyncApp) -> None:
    job_id = jobs.submit()["id"]
    assert jobs.worker.pop() == job_id
    assert jobs.worker.start(job_id)
    jobs.worker.tokens(job_id, ["a", "b", "c"])

    running = jobs.http.get(f"/v1/jobs/{job_id}").json()
    assert running["status"] == "in_progress"
    assert running["tokens_generated"] == 3
    assert running["queue_position"] is None and running["estimated_wait_seconds"] is None
    assert isinstance(running["started_at"], int) and running["attempts"] == 1

    response = jobs.worker.finish(job_id, "abc")
    done = jobs.http.get(f"/v1/jobs/{job_id}").json()
    assert done["status"] == "completed"
    assert done["response"] == response
    assert_conforms("CreateChatCompletionResponse", done["response"])
    assert isinstance(done["finished_at"], int) and done["error"] is None


def test_a_failed_job_carries_an_openai_error_object(jobs: SyncApp) -> None:
    job_id = jobs.submit()["id"]
    jobs.worker.start(job_id)
    jobs.worker.fail(job_id)

    failed = jobs.http.get(f"/v1/jobs/{job_id}").json()
    assert failed["status"] == "failed" and failed["response"] is None
    assert set(failed["error"]) == {"message", "type", "param", "code"}
    assert failed["error"]["code"] == "context_length_exceeded"


def test_a_cancelled_queued_job_never_runs_and_cancel_is_idempotent(jobs: SyncApp) -> None:
    job_id = jobs.submit()["id"]
    first = jobs.http.post(f"/v1/jobs/{job_id}/cancel")
    again = jobs.http.post(f"/v1/jobs/{job_id}/cancel")

    assert first.status_code == again.status_code == 200
    assert first.json()["status"] == again.json()["status"] == "cancelled"
    assert first.json()["error"]["code"] == "cancelled"
    assert jobs.redis.llen(rqcontract.queue_key(MODEL, names.BATCH)) == 0
    # Even a worker that had already popped it refuses to run it.
    context = WorkerContext(jobs.settings, jobs.redis, None, Scripts(jobs.redis), "w")  # type: ignore[arg-type]
    payload = JobPayload(id=job_id, kind="chat", model=MODEL, lane=names.BATCH, created=0, messages=[], params=Params())
    assert run(context, payload.model_dump())["outcome"] == "skipped"
    assert jobs.http.get(f"/v1/jobs/{job_id}").json()["started_at"] is None


def test_cancelling_a_running_job_stops_it_at_its_next_token(jobs: SyncApp) -> None:
    job_id = jobs.submit()["id"]
    jobs.worker.start(job_id)
    assert jobs.worker.tokens(job_id, ["a"]) == [0]

    running = jobs.http.post(f"/v1/jobs/{job_id}/cancel").json()
    assert running["status"] == "in_progress"
    assert jobs.worker.tokens(job_id, ["b"]) == [1]
    jobs.worker.end_cancelled(job_id)

    after = jobs.http.post(f"/v1/jobs/{job_id}/cancel").json()
    assert after["status"] == "cancelled" and after["tokens_generated"] == 2


def test_a_finished_job_is_left_as_it_is_by_cancel(jobs: SyncApp) -> None:
    job_id = jobs.submit()["id"]
    jobs.worker.run(job_id)

    assert jobs.http.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "completed"


def test_list_is_newest_first_and_paginated(jobs: SyncApp) -> None:
    created = [jobs.submit()["id"] for _ in range(5)]

    seen, after, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        page = jobs.http.get("/v1/jobs", params=params).json()
        pages += 1
        seen += [job["id"] for job in page["data"]]
        assert page["object"] == "list" and page["last_id"] == page["data"][-1]["id"]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == created[::-1]
    assert pages == 3


def test_list_limit_is_bounded(jobs: SyncApp) -> None:
    response = jobs.http.get("/v1/jobs", params={"limit": 0})

    assert response.status_code == 400 and response.json()["error"]["param"] == "limit"


def test_unknown_job_is_404(jobs: SyncApp) -> None:
    for response in (
        jobs.http.get("/v1/jobs/job_" + "0" * 32),
        jobs.http.post("/v1/jobs/job_" + "0" * 32 + "/cancel"),
        jobs.http.get("/v1/jobs/job_" + "0" * 32 + "/events"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_ids_are_random(jobs: SyncApp) -> None:
    ids = {jobs.submit()["id"] for _ in range(20)}

    assert len(ids) == 20


def _read_events(jobs: SyncApp, job_id: str, last_event_id: str | None = None) -> list[tuple[int, str, Any]]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with jobs.http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return job_events(response.iter_lines())


def test_events_replay_from_the_start_and_resume_after_last_event_id(jobs: SyncApp) -> None:
    job_id = jobs.submit()["id"]
    jobs.worker.start(job_id)
    jobs.worker.tokens(job_id, ["a", "b", "c"])
    jobs.worker.finish(job_id, "abc")

    whole = _read_events(jobs, job_id)
    resumed = _read_events(jobs, job_id, last_event_id="2")

    assert [seq for seq, _, _ in whole] == [1, 2, 3, 4, 5]
    assert [name for _, name, _ in whole] == ["started", "token", "token", "token", "done"]
    assert "".join(event["x"] for _, name, event in whole if name == "token") == "abc"
    assert resumed == whole[2:]


def test_events_followed_live_have_no_gap_and_no_duplicate(jobs: SyncApp) -> None:
    job_id = jobs.submit()["id"]
    jobs.worker.start(job_id)
    jobs.worker.tokens(job_id, ["t0"])
    pieces = [f"t{i}" for i in range(1, 60)]

    def produce() -> None:
        for piece in pieces:
            jobs.worker.tokens(job_id, [piece])
        jobs.worker.finish(job_id)

    producer = threading.Timer(0.2, produce)
    producer.start()
    try:
        seen = _read_events(jobs, job_id)
    finally:
        producer.join(10)
    assert [seq for seq, _, _ in seen] == list(range(1, 63))
    assert [event["x"] for _, name, event in seen if name == "token"] == ["t0", *pieces]
    assert seen[-1][1] == "done"
