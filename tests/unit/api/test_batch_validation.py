"""A malformed batch input file fails validation, with `errors.data` naming each bad line."""

from collections.abc import Iterator
from typing import Any

import pytest

from shared import names, rqcontract
from tests.fakes import MODEL, register_worker
from tests.harness import CHAT, SyncApp, line, sync_app
from tests.spec import assert_conforms


@pytest.fixture
def jobs() -> Iterator[SyncApp]:
    with sync_app(max_batch_lines=5, max_file_bytes=4096) as app:
        yield app


def _validated(jobs: SyncApp, lines: list[Any]) -> dict[str, Any]:
    batch = jobs.create_batch(jobs.upload(lines)["id"])
    assert batch["status"] == "validating"
    return jobs.wait_batch(batch["id"], lambda b: b["status"] != "validating")


def test_a_good_file_goes_in_progress_with_every_line_on_the_batch_lane(jobs: SyncApp) -> None:
    batch = _validated(jobs, [line("a"), line("b"), line("c")])

    assert batch["status"] == "in_progress"
    assert batch["request_counts"] == {"total": 3, "completed": 0, "failed": 0}
    assert batch["in_progress_at"] >= batch["created_at"]
    assert_conforms("Batch", batch)
    lane = rqcontract.queue_key(MODEL, names.BATCH)
    jobs.wait_batch(batch["id"], lambda _: jobs.redis.llen(lane) == 3)
    assert jobs.redis.llen(rqcontract.queue_key(MODEL, names.INTERACTIVE)) == 0


MALFORMED = [
    ([line("a"), b"{not json", line("c")], 2, "invalid_json_line"),
    ([line("a"), line("b"), line("a")], 3, "duplicate_custom_id"),
    ([line("a", url="/v1/embeddings")], 1, "mismatched_url"),
    ([line("a"), line("b", {**CHAT, "model": "no-such-model"})], 2, "model_not_found"),
    ([line("a"), line("b", {"model": MODEL})], 2, None),
    ([line("a"), line("b", {**CHAT, "stream": True})], 2, None),
    ([{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions"}], 1, "invalid_request"),
    ([{**line("a"), "custom_id": ""}], 1, "invalid_custom_id"),
]


@pytest.mark.parametrize(("lines", "bad_line", "code"), MALFORMED)
def test_a_malformed_file_fails_validation_naming_the_line(
    jobs: SyncApp, lines: list[Any], bad_line: int, code: str | None
) -> None:
    batch = _validated(jobs, lines)

    assert batch["status"] == "failed"
    assert batch["failed_at"] >= batch["created_at"]
    assert_conforms("Batch", batch)
    errors = batch["errors"]["data"]
    assert [error["line"] for error in errors] == [bad_line]
    assert errors[0]["code"] == code or (code is None and errors[0]["param"].startswith("body."))
    assert errors[0]["message"]
    assert jobs.redis.llen(rqcontract.queue_key(MODEL, names.BATCH)) == 0


def test_a_prompt_that_cannot_fit_the_context_fails_validation() -> None:
    long = {**CHAT, "messages": [{"role": "user", "content": "w " * 20_000}]}
    with sync_app() as jobs:
        batch = _validated(jobs, [line("a"), line("b", long)])

    assert batch["status"] == "failed"
    error = batch["errors"]["data"][0]
    assert (error["line"], error["code"], error["param"]) == (2, "context_length_exceeded", "body.messages")


def test_a_line_for_a_model_that_cannot_do_its_endpoint_fails_validation() -> None:
    with sync_app() as jobs:
        register_worker(jobs.redis, "embedder", context=(512, 8))
        jobs.redis.hset(names.model_info_key("embedder"), "kind", "embedding")
        batch = _validated(jobs, [line("a"), line("b", {**CHAT, "model": "embedder"})])

    assert batch["status"] == "failed"
    error = batch["errors"]["data"][0]
    assert (error["line"], error["code"], error["param"]) == (2, "model_not_supported", "body.model")


def test_every_bad_line_is_reported(jobs: SyncApp) -> None:
    batch = _validated(jobs, [b"[]", line("b"), b"nope", line("b")])

    assert [(e["line"], e["code"]) for e in batch["errors"]["data"]] == [
        (1, "invalid_request"),
        (3, "invalid_json_line"),
        (4, "duplicate_custom_id"),
    ]


def test_more_lines_than_the_limit_fail_validation(jobs: SyncApp) -> None:
    batch = _validated(jobs, [line(str(i)) for i in range(6)])

    assert batch["status"] == "failed"
    assert batch["errors"]["data"][0]["code"] == "too_many_requests"


def test_an_empty_file_fails_validation(jobs: SyncApp) -> None:
    file_id = jobs.upload([])["id"]
    batch = jobs.wait_batch(jobs.create_batch(file_id)["id"], lambda b: b["status"] != "validating")

    assert batch["status"] == "failed" and batch["errors"]["data"][0]["code"] == "empty_file"


def test_a_file_over_the_size_limit_is_413_at_upload(jobs: SyncApp) -> None:
    content = b"".join(b'{"custom_id": "%d", "body": {}}\n' % i for i in range(200))
    response = jobs.http.post("/v1/files", files={"file": ("big.jsonl", content)}, data={"purpose": "batch"})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert jobs.http.get("/v1/files").json()["data"] == []


def test_only_batch_files_and_known_files_make_batches(jobs: SyncApp) -> None:
    purpose = jobs.http.post("/v1/files", files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "fine-tune"})
    missing = jobs.http.post(
        "/v1/batches",
        json={"input_file_id": "file-missing", "endpoint": "/v1/chat/completions", "completion_window": "24h"},
    )
    window = jobs.http.post(
        "/v1/batches",
        json={"input_file_id": "file-x", "endpoint": "/v1/chat/completions", "completion_window": "forever"},
    )

    assert purpose.status_code == 400 and purpose.json()["error"]["param"] == "purpose"
    assert missing.status_code == 404
    assert window.status_code == 400 and window.json()["error"]["param"] == "completion_window"
