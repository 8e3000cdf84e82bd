"""With API keys configured, jobs, files and batches are visible only to the key that created them."""

import re
from collections.abc import Iterator

import pytest

from tests.harness import SyncApp, line, sync_app

OWNER = {"Authorization": "Bearer key-owner"}
OTHER = {"Authorization": "Bearer key-other"}


@pytest.fixture
def jobs() -> Iterator[SyncApp]:
    with sync_app(api_keys="key-owner,key-other") as app:
        yield app


def _assert_not_found(response_status: int, body: dict) -> None:
    assert response_status == 404
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_another_key_cannot_read_follow_or_cancel_a_job(jobs: SyncApp) -> None:
    job_id = jobs.submit(**OWNER)["id"]

    for response in (
        jobs.http.get(f"/v1/jobs/{job_id}", headers=OTHER),
        jobs.http.get(f"/v1/jobs/{job_id}/events", headers=OTHER),
        jobs.http.post(f"/v1/jobs/{job_id}/cancel", headers=OTHER),
    ):
        _assert_not_found(response.status_code, response.json())
    assert jobs.http.get("/v1/jobs", headers=OTHER).json()["data"] == []
    mine = jobs.http.get(f"/v1/jobs/{job_id}", headers=OWNER).json()
    assert mine["status"] == "queued"
    assert [job["id"] for job in jobs.http.get("/v1/jobs", headers=OWNER).json()["data"]] == [job_id]


def test_another_key_cannot_read_fetch_or_delete_a_file(jobs: SyncApp) -> None:
    file_id = jobs.upload([line("a")], **OWNER)["id"]

    for response in (
        jobs.http.get(f"/v1/files/{file_id}", headers=OTHER),
        jobs.http.get(f"/v1/files/{file_id}/content", headers=OTHER),
        jobs.http.delete(f"/v1/files/{file_id}", headers=OTHER),
    ):
        _assert_not_found(response.status_code, response.json())
    assert jobs.http.get("/v1/files", headers=OTHER).json()["data"] == []
    assert jobs.http.get(f"/v1/files/{file_id}/content", headers=OWNER).status_code == 200


def test_another_key_cannot_use_read_or_cancel_a_batch_or_its_output(jobs: SyncApp) -> None:
    file_id = jobs.upload([line("a")], **OWNER)["id"]
    refused = jobs.http.post(
        "/v1/batches",
        json={"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"},
        headers=OTHER,
    )
    _assert_not_found(refused.status_code, refused.json())
    batch = jobs.create_batch(file_id, **OWNER)
    job_id = jobs.worker.take()
    jobs.worker.run(job_id)
    finished = jobs.wait_batch(batch["id"], lambda b: b["status"] == "completed", **OWNER)

    for response in (
        jobs.http.get(f"/v1/batches/{batch['id']}", headers=OTHER),
        jobs.http.post(f"/v1/batches/{batch['id']}/cancel", headers=OTHER),
        jobs.http.get(f"/v1/files/{finished['output_file_id']}/content", headers=OTHER),
        jobs.http.get(f"/v1/jobs/{job_id}", headers=OTHER),
    ):
        _assert_not_found(response.status_code, response.json())
    assert jobs.http.get("/v1/batches", headers=OTHER).json()["data"] == []
    assert jobs.http.get(f"/v1/files/{finished['output_file_id']}/content", headers=OWNER).status_code == 200


def test_no_key_or_a_wrong_key_is_401(jobs: SyncApp) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = jobs.http.get("/v1/jobs", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"


def test_ids_are_random_and_unguessable(jobs: SyncApp) -> None:
    job_ids = {jobs.submit(**OWNER)["id"] for _ in range(10)}
    file_ids = {jobs.upload([line("a")], **OWNER)["id"] for _ in range(10)}
    batch_id = jobs.create_batch(next(iter(file_ids)), **OWNER)["id"]

    assert len(job_ids) == len(file_ids) == 10
    assert all(re.fullmatch(r"job_[0-9a-f]{32}", i) for i in job_ids)
    assert all(re.fullmatch(r"file-[0-9a-f]{24}", i) for i in file_ids)
    assert re.fullmatch(r"batch_[0-9a-f]{32}", batch_id)
