"""Real RQ jobs run in-process by worker.runner.ModelWorker on fakeredis, with a FakeLlama for the model."""

import asyncio
import json
import zlib
from typing import Any

import fakeredis
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.job import Job
from rq.serializers import JSONSerializer

from api.cancel import cancel_job
from shared import names, rqcontract
from shared.payload import JOB_DESCRIPTION, JOB_FUNCTION, JobPayload
from tests.fakes import (
    FakeLlama,
    async_redis,
    chat_job,
    completion_job,
    enqueue,
    make_context,
    make_engine,
    make_settings,
    run_burst,
)
from tests.spec import assert_conforms
from worker.context import WorkerContext
from worker.task import run

SECRET = "my very private prompt"


def context(redis: fakeredis.FakeRedis, llama: FakeLlama) -> WorkerContext:
    return make_context(redis, make_engine(llama))


def stored_events(redis: fakeredis.FakeRedis, job: JobPayload) -> list[dict[str, Any]]:
    entries = redis.xrange(names.events_key(job.id))
    assert [int(fields[b"s"]) for _, fields in entries] == list(range(1, len(entries) + 1))
    return [json.loads(fields[b"e"]) for _, fields in entries]


def status(redis: fakeredis.FakeRedis, job: JobPayload) -> str:
    return redis.hget(names.job_key(job.id), "status").decode()


def outcome(redis: fakeredis.FakeRedis, job: JobPayload) -> dict[str, Any]:
    """What the job function returned, as RQ stored it."""
    result = Job.fetch(job.id, connection=redis, serializer=JSONSerializer).latest_result()
    assert result is not None and isinstance(result.return_value, dict)
    return result.return_value


def terminal(found: list[dict[str, Any]]) -> dict[str, Any]:
    """The one terminal event, which must also be the last."""
    ends = [event for event in found if event["k"] in ("d", "e")]
    assert len(ends) == 1
    assert found[-1] is ends[0]
    return ends[0]


def test_a_chat_job_streams_its_tokens_then_one_done_event(
    server: fakeredis.FakeServer, redis: fakeredis.FakeRedis
) -> None:
    llama = FakeLlama("Hi there!")
    job = chat_job(SECRET, max_tokens=50)
    enqueue(server, job)
    run_burst(context(redis, llama))
    found = stored_events(redis, job)
    assert [event["k"] for event in found] == ["s"] + ["t"] * len("Hi there!") + ["d"]
    assert "".join(event["x"] for event in found if event["k"] == "t") == "Hi there!"
    response = terminal(found)["response"]
    assert_conforms("CreateChatCompletionResponse", response)
    assert response["choices"][0]["message"]["content"] == "Hi there!"
    assert response["choices"][0]["finish_reason"] == "stop"
    assert response["usage"]["completion_tokens"] == len("Hi there!")
    assert response["usage"]["prompt_tokens"] == found[0]["prompt_tokens"] == len(llama.calls[0]["tokens"])
    assert response["id"] == "chatcmpl-" + job.id.removeprefix("job_")
    assert status(redis, job) == "completed"
    assert Job.fetch(job.id, connection=redis, serializer=JSONSerializer).get_status() == "finished"


def test_a_completion_job_ends_with_a_text_completion(server: fakeredis.FakeServer, redis: fakeredis.FakeRedis) -> None:
    job = completion_job("Once upon", max_tokens=4)
    enqueue(server, job)
    run_burst(context(redis, FakeLlama("a time there was")))
    response = terminal(stored_events(redis, job))["response"]
    assert_conforms("CreateCompletionResponse", response)
    assert response["choices"][0]["text"] == "a ti"
    assert response["choices"][0]["finish_reason"] == "length"
    assert response["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_generation_that_raises_ends_in_one_error_event_and_the_worker_goes_on(
    server: fakeredis.FakeServer, redis: fakeredis.FakeRedis
) -> None:
    llama = FakeLlama("abcdefgh")

    def fail_first_job(index: int) -> None:
        if len(llama.calls) == 1 and index == 3:
            raise RuntimeError("decode failed")

    llama.on_token = fail_first_job
    failing, healthy = chat_job(), chat_job()
    enqueue(server, failing)
    enqueue(server, healthy)
    run_burst(context(redis, llama))
    found = stored_events(redis, failing)
    end = terminal(found)
    assert [event["k"] for event in found] == ["s", "t", "t", "t", "e"]
    assert (end["status"], end["error"]["code"], end["error"]["type"]) == (500, "internal_error", "server_error")
    assert "decode failed" not in json.dumps(end)
    assert status(redis, failing) == "failed"
    assert terminal(stored_events(redis, healthy))["k"] == "d"
    assert status(redis, healthy) == "completed"


def test_a_prompt_over_the_context_ends_in_context_length_exceeded(
    server: fakeredis.FakeServer, redis: fakeredis.FakeRedis
) -> None:
    llama = FakeLlama(n_ctx=64)
    job = chat_job("x" * 100)
    enqueue(server, job)
    run_burst(context(redis, llama))
    found = stored_events(redis, job)
    assert len(found) == 1
    end = terminal(found)
    assert (end["status"], end["error"]["code"], end["error"]["param"]) == (400, "context_length_exceeded", "messages")
    assert llama.calls == []
    assert status(redis, job) == "failed"


def test_the_rq_job_is_json_and_its_description_holds_no_user_text(
    server: fakeredis.FakeServer, redis: fakeredis.FakeRedis
) -> None:
    job = chat_job(SECRET)
    enqueue(server, job)
    raw = redis.hgetall(rqcontract.job_key(job.id))
    call = json.loads(zlib.decompress(raw[b"data"]))
    assert call[0] == JOB_FUNCTION
    assert call[2] == [job.model_dump(mode="json", exclude_none=True)]
    assert raw[b"description"].decode() == JOB_DESCRIPTION
    outside_data = b"".join(key + value for key, value in raw.items() if key != b"data")
    assert SECRET.encode() not in outside_data
    assert redis.lrange(rqcontract.queue_key(job.model, job.lane), 0, -1) == [job.id.encode()]
    run_burst(context(redis, FakeLlama()))
    fetched = Job.fetch(job.id, connection=redis, serializer=JSONSerializer)
    assert fetched.description == JOB_DESCRIPTION
    summary = outcome(redis, job)
    assert summary["outcome"] == "completed"
    assert SECRET not in json.dumps(summary)


def test_cancellation_mid_generation_stops_within_a_token_or_two(
    server: fakeredis.FakeServer, redis: fakeredis.FakeRedis
) -> None:
    job = chat_job()
    llama = FakeLlama("y" * 500, delay=0.002)

    def cancel_at_five(index: int) -> None:
        if index == 5:
            redis.set(names.cancel_key(job.id), 1)

    llama.on_token = cancel_at_five
    enqueue(server, job)
    run_burst(context(redis, llama))
    found = stored_events(redis, job)
    end = terminal(found)
    assert (end["status"], end["error"]["code"]) == (499, "cancelled")
    tokens = sum(1 for event in found if event["k"] == "t")
    # Token events are sent from a helper thread, so the flag is seen one or two tokens after it is set.
    assert 5 <= tokens <= 9
    assert end["partial"]["usage"]["completion_tokens"] == tokens
    assert status(redis, job) == "cancelled"


def test_a_job_cancelled_while_queued_never_runs(server: fakeredis.FakeServer, redis: fakeredis.FakeRedis) -> None:
    job, later = chat_job(), chat_job()
    enqueue(server, job)
    enqueue(server, later)

    async def cancel() -> str:
        client = async_redis(server)
        try:
            return await cancel_job(client, make_settings(), job.id, job.model, job.lane)
        finally:
            await client.aclose()

    assert asyncio.run(cancel()) == "cancelled"
    llama = FakeLlama()
    run_burst(context(redis, llama))
    assert [event["k"] for event in stored_events(redis, job)] == ["e"]
    assert status(redis, job) == "cancelled"
    assert len(llama.calls) == 1
    assert status(redis, later) == "completed"


def test_the_worker_reports_no_current_job_and_records_the_duration_afterwards(
    server: fakeredis.FakeServer, redis: fakeredis.FakeRedis
) -> None:
    ctx = context(redis, FakeLlama())
    enqueue(server, chat_job())
    run_burst(ctx)
    assert ctx.current.snapshot() == {}
    assert len(redis.lrange(names.job_durations_key(ctx.settings.model_name), 0, -1)) == 1


def test_a_job_cancelled_between_dequeue_and_claim_is_skipped(
    server: fakeredis.FakeServer, redis: fakeredis.FakeRedis
) -> None:
    job = chat_job()
    enqueue(server, job)
    redis.hset(names.job_key(job.id), "status", "cancelled")
    llama = FakeLlama()
    run_burst(context(redis, llama))
    assert llama.calls == []
    assert stored_events(redis, job) == []
    assert outcome(redis, job)["outcome"] == "skipped"


def test_a_superseded_attempt_stops_and_writes_no_terminal_event(
    server: fakeredis.FakeServer, redis: fakeredis.FakeRedis
) -> None:
    job = chat_job()
    llama = FakeLlama("z" * 50)

    def handed_to_another_worker(index: int) -> None:
        if index == 2:
            redis.hset(names.job_key(job.id), "attempt", 2)

    llama.on_token = handed_to_another_worker
    enqueue(server, job)
    run_burst(context(redis, llama))
    found = stored_events(redis, job)
    assert all(event["k"] in ("s", "t") for event in found)
    assert sum(1 for event in found if event["k"] == "t") <= 2
    assert status(redis, job) == "in_progress"
    assert outcome(redis, job)["outcome"] == "superseded"


def test_when_even_the_error_event_cannot_be_written_the_log_names_the_job(
    server: fakeredis.FakeServer, redis: fakeredis.FakeRedis, caplog: pytest.LogCaptureFixture
) -> None:
    job = chat_job()
    llama = FakeLlama("abcdef")

    def redis_goes_away(index: int) -> None:
        if index == 2:
            server.connected = False
            raise RuntimeError("decode failed")

    llama.on_token = redis_goes_away
    enqueue(server, job)
    with pytest.raises(RedisConnectionError):
        run(context(redis, llama), job.model_dump(mode="json"))
    (record,) = [r for r in caplog.records if r.getMessage() == "could not publish the terminal event"]
    assert getattr(record, "job_id", None) == job.id
