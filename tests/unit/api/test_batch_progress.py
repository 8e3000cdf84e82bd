"""A batch's life: counts as lines finish, output and error files, cancel, expiry, and retention."""

import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import orjson
import pytest

from api.admission import Admission
from api.batch_runner import BatchRunner
from api.batches import create_batch, load_batch
from shared import names, rqcontract
from shared.schemas import BatchCreate
from shared.settings import Settings
from tests.fakes import MODEL, register_worker
from tests.harness import CHAT, CONTEXT, SyncApp, line, sync_app
from tests.probes import wait_for
from tests.spec import assert_conforms


@pytest.fixture
def jobs() -> Iterator[SyncApp]:
    with sync_app() as app:
        yield app


def _lines(jobs: SyncApp, file_id: str) -> list[dict[str, Any]]:
    response = jobs.http.get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200
    return [orjson.loads(text) for text in response.content.splitlines()]


def test_counts_move_as_lines_finish_and_the_files_hold_every_line(jobs: SyncApp) -> None:
    batch = jobs.create_batch(jobs.upload([line("a"), line("b"), line("c")])["id"])
    taken = [jobs.worker.take() for _ in range(3)]
    custom_ids = {job_id: orjson.loads(jobs.redis.hget(names.job_key(job_id), "custom_id_json")) for job_id in taken}

    jobs.worker.run(taken[0], "first")
    assert jobs.batch(batch["id"])["request_counts"] == {"total": 3, "completed": 1, "failed": 0}
    jobs.worker.start(taken[1])
    jobs.worker.fail(taken[1])
    middle = jobs.batch(batch["id"])
    assert middle["request_counts"] == {"total": 3, "completed": 1, "failed": 1}
    assert middle["status"] == "in_progress" and "output_file_id" not in middle
    jobs.worker.run(taken[2], "third")

    done = jobs.batch(batch["id"])
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    assert done["created_at"] <= done["in_progress_at"] <= done["finalizing_at"] <= done["completed_at"]
    assert_conforms("Batch", done)
    output, errors = _lines(jobs, done["output_file_id"]), _lines(jobs, done["error_file_id"])
    assert sorted(item["custom_id"] for item in output) == sorted([custom_ids[taken[0]], custom_ids[taken[2]]])
    assert [item["custom_id"] for item in errors] == [custom_ids[taken[1]]]
    for item in output + errors:
        assert_conforms("BatchRequestOutput", item)
    for item in output:
        assert item["response"]["status_code"] == 200
        assert_conforms("CreateChatCompletionResponse", item["response"]["body"])
    assert errors[0]["response"]["status_code"] == 400
    assert errors[0]["response"]["body"]["error"]["code"] == "context_length_exceeded"
    for file_id, content in ((done["output_file_id"], output), (done["error_file_id"], errors)):
        described = jobs.http.get(f"/v1/files/{file_id}").json()
        assert_conforms("OpenAIFile", described)
        assert described["bytes"] == len(jobs.http.get(f"/v1/files/{file_id}/content").content) > 0
        assert len(content) >= 1


def test_each_line_job_is_readable_as_a_job_too(jobs: SyncApp) -> None:
    jobs.create_batch(jobs.upload([line("a")])["id"])
    job_id = jobs.worker.take()
    response = jobs.worker.run(job_id)

    assert jobs.http.get(f"/v1/jobs/{job_id}").json()["response"] == response


def test_cancel_ends_queued_lines_at_once_and_running_ones_at_their_next_token(jobs: SyncApp) -> None:
    batch = jobs.create_batch(jobs.upload([line("a"), line("b"), line("c")])["id"])
    running = jobs.worker.take()
    jobs.worker.start(running)
    jobs.wait_batch(batch["id"], lambda _: jobs.redis.llen(rqcontract.queue_key(MODEL, names.BATCH)) == 2)

    cancelling = jobs.http.post(f"/v1/batches/{batch['id']}/cancel").json()
    assert cancelling["status"] == "cancelling" and cancelling["cancelling_at"] >= cancelling["created_at"]
    jobs.wait_batch(batch["id"], lambda b: b["request_counts"]["failed"] == 2)
    assert jobs.redis.llen(rqcontract.queue_key(MODEL, names.BATCH)) == 0
    assert jobs.batch(batch["id"])["status"] == "cancelling"
    assert jobs.worker.tokens(running, ["x"]) == [1]
    jobs.worker.end_cancelled(running)

    cancelled = jobs.batch(batch["id"])
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"] >= cancelled["cancelling_at"]
    assert cancelled["request_counts"] == {"total": 3, "completed": 0, "failed": 3}
    assert_conforms("Batch", cancelled)
    assert jobs.http.post(f"/v1/batches/{batch['id']}/cancel").json()["status"] == "cancelled"
    assert len(_lines(jobs, cancelled["error_file_id"])) == 3


def test_lines_left_when_the_window_ends_expire() -> None:
    with sync_app() as jobs:
        batch = jobs.create_batch(jobs.upload([line("a"), line("b")])["id"], window="1s")
        jobs.worker.run(jobs.worker.take())
        expired = jobs.wait_batch(batch["id"], lambda b: b["status"] == "expired", timeout=15)

        assert expired["expired_at"] >= expired["expires_at"]
        jobs.wait_batch(batch["id"], lambda b: b["request_counts"]["failed"] == 1)
        final = jobs.batch(batch["id"])
        assert final["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
        assert_conforms("Batch", final)
        assert [item["response"]["body"]["error"]["code"] for item in _lines(jobs, final["error_file_id"])] == [
            "batch_expired"
        ]
        assert len(_lines(jobs, final["output_file_id"])) == 1


def test_results_files_and_batches_read_as_404_once_retention_ends() -> None:
    with sync_app(result_ttl=1) as jobs:
        job_id = jobs.submit()["id"]
        file_id = jobs.upload([line("a")])["id"]
        batch = jobs.create_batch(file_id, window="1s")
        jobs.worker.run(jobs.worker.take())
        jobs.worker.run(jobs.worker.take())
        done = jobs.wait_batch(batch["id"], lambda b: b["status"] == "completed")
        time.sleep(2.5)

        for path in (
            f"/v1/jobs/{job_id}",
            f"/v1/jobs/{job_id}/events",
            f"/v1/files/{file_id}",
            f"/v1/files/{file_id}/content",
            f"/v1/batches/{batch['id']}",
            f"/v1/files/{done['output_file_id']}/content",
        ):
            response = jobs.http.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["type"] == "invalid_request_error"
        for path in ("/v1/jobs", "/v1/files", "/v1/batches"):
            assert jobs.http.get(path).json()["data"] == []


async def test_a_line_that_cannot_be_enqueued_still_ends_in_the_error_file() -> None:
    server = fakeredis.FakeServer()
    register_worker(fakeredis.FakeRedis(server=server), MODEL, context=CONTEXT)
    redis = fakeredis.FakeAsyncRedis(server=server)
    settings = Settings(redis_url="redis://unused")
    await redis.hset(names.file_key("file-in"), mapping={"owner": "public", "purpose": "batch", "created_at": 0})
    long = {**CHAT, "messages": [{"role": "user", "content": "w " * 20_000}]}
    await redis.rpush(names.file_lines_key("file-in"), orjson.dumps(line("fits")), orjson.dumps(line("long", long)))
    body = BatchCreate(input_file_id="file-in", endpoint="/v1/chat/completions", completion_window="24h")
    batch_id = await create_batch(redis, settings, body, "public")
    # As after a restart: validated earlier, resumed now.
    await redis.hset(names.batch_key(batch_id), mapping={"status": "in_progress", "total": 2})

    await BatchRunner(redis, settings, Admission(redis, settings)).run(batch_id)

    record = await load_batch(redis, batch_id, "public")
    assert (record["failed"], record["enqueued"]) == ("1", "2")
    assert await redis.llen(rqcontract.queue_key(MODEL, names.BATCH)) == 1
    (error,) = await redis.lrange(names.batch_lines_key(batch_id, "errors"), 0, -1)
    assert orjson.loads(error)["custom_id"] == "long"
    assert orjson.loads(error)["response"]["body"]["error"]["code"] == "context_length_exceeded"


def test_a_line_that_ends_after_its_batch_expired_does_not_bring_the_batch_back(jobs: SyncApp) -> None:
    batch = jobs.create_batch(jobs.upload([line("a")])["id"])
    job_id = jobs.worker.take()
    # The runner counts the line just after the job is queued: let it finish before the batch goes.
    key = names.batch_key(batch["id"])
    wait_for(lambda: jobs.redis.hget(key, "enqueued") == b"1", "the runner to count the line", 10, 0.01)
    jobs.redis.delete(key)

    jobs.worker.run(job_id, "late")

    assert not jobs.redis.exists(names.batch_key(batch["id"]))
    assert not jobs.redis.exists(names.batch_lines_key(batch["id"], "output"))
    assert jobs.redis.hget(names.job_key(job_id), "status") == b"completed"
