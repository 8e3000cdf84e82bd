"""The Lua scripts of shared/scripts.py on fakeredis: events, claims and the one terminal event per job."""

import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import orjson
import pytest

from shared import events, names
from shared.emission import emission
from shared.scripts import CLAIM, EMIT, ORPHANED
from tests.fakes import make_settings

JOB = "job_" + "ab" * 16
SETTINGS = make_settings(heartbeat_ttl=7, result_ttl=300)


@pytest.fixture
def redis() -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis()
    client.hset(names.job_key(JOB), mapping={"status": "queued", "attempt": 0, "seq": 0, "tokens": 0})
    yield client
    client.close()


def emit(redis: fakeredis.FakeRedis, event: events.Event, **options: Any) -> int:
    keys, args = emission(SETTINGS, JOB, event, **options)
    return int(redis.register_script(EMIT)(keys=keys, args=args))


def claim(redis: fakeredis.FakeRedis, worker: str = "w1") -> int:
    keys = [names.job_key(JOB), names.heartbeat_key(JOB)]
    return int(redis.register_script(CLAIM)(keys=keys, args=[worker, time.time(), SETTINGS.heartbeat_ttl]))


def stream(redis: fakeredis.FakeRedis) -> list[tuple[int, dict[str, Any]]]:
    return [(int(f[b"s"]), orjson.loads(f[b"e"])) for _, f in redis.xrange(names.events_key(JOB))]


def field(redis: fakeredis.FakeRedis, name: str) -> str | None:
    value = redis.hget(names.job_key(JOB), name)
    return value.decode() if value is not None else None


DONE = events.Done({"id": "x"})
FAILED = events.Failed.of(500, "server_error", "internal_error", "boom")


# --- CLAIM ------------------------------------------------------------------------------------------


def test_claim_takes_a_queued_job_under_a_new_attempt(redis: fakeredis.FakeRedis) -> None:
    assert claim(redis, "w1") == 1
    assert field(redis, "status") == "in_progress"
    assert field(redis, "worker") == "w1"
    assert field(redis, "attempt") == "1"
    assert redis.get(names.heartbeat_key(JOB)) == b"w1"
    assert 0 < redis.ttl(names.heartbeat_key(JOB)) <= 7


def test_claim_refuses_a_job_that_is_not_queued(redis: fakeredis.FakeRedis) -> None:
    assert claim(redis, "w1") == 1
    assert claim(redis, "w2") == -1
    assert field(redis, "worker") == "w1"
    assert field(redis, "attempt") == "1"


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled", "expired"])
def test_claim_refuses_a_finished_job(redis: fakeredis.FakeRedis, status: str) -> None:
    redis.hset(names.job_key(JOB), "status", status)
    assert claim(redis) == -1
    assert field(redis, "status") == status
    assert not redis.exists(names.heartbeat_key(JOB))


def test_claim_refuses_an_unknown_job() -> None:
    assert claim(fakeredis.FakeRedis()) == -1


# --- EMIT -------------------------------------------------------------------------------------------


def test_events_get_consecutive_sequence_numbers_in_stream_and_channel(redis: fakeredis.FakeRedis) -> None:
    attempt = claim(redis)
    pubsub = redis.pubsub()
    pubsub.subscribe(names.live_channel(JOB))
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    assert emit(redis, events.Started("w1", 5, attempt), attempt=attempt) == 0
    for text in ("a", "b"):
        assert emit(redis, events.Token(text), attempt=attempt) == 0
    live = [events.decode(pubsub.get_message(timeout=1)["data"]) for _ in range(3)]
    pubsub.close()
    assert [seq for seq, _ in live] == [1, 2, 3]
    assert stream(redis) == [(seq, event.wire()) for seq, event in live]
    assert [event.kind for _, event in live] == ["s", "t", "t"]
    assert field(redis, "seq") == "3"
    assert field(redis, "tokens") == "2"
    assert 0 < redis.ttl(names.events_key(JOB)) <= 300


def test_terminal_event_sets_the_status_and_keeps_the_event(redis: fakeredis.FakeRedis) -> None:
    attempt = claim(redis)
    assert emit(redis, DONE, attempt=attempt, terminal="completed") == 0
    assert field(redis, "status") == "completed"
    assert field(redis, "terminal") == events.encode(DONE).decode()
    assert field(redis, "finished_at") is not None


@pytest.mark.parametrize(
    ("event", "terminal"),
    [(FAILED, "failed"), (DONE, "completed"), (events.Token("x"), "")],
)
def test_nothing_is_appended_after_the_terminal_event(
    redis: fakeredis.FakeRedis, event: events.Event, terminal: str
) -> None:
    attempt = claim(redis)
    assert emit(redis, DONE, attempt=attempt, terminal="completed") == 0
    assert emit(redis, event, attempt=attempt, terminal=terminal) == -1
    assert emit(redis, event, terminal=terminal) == -1
    assert field(redis, "status") == "completed"
    assert field(redis, "terminal") == events.encode(DONE).decode()
    assert [e["k"] for _, e in stream(redis)] == ["d"]


def test_an_event_of_a_stale_attempt_is_refused(redis: fakeredis.FakeRedis) -> None:
    first = claim(redis)
    # The job was handed to another worker since (its first worker was presumed dead).
    redis.hset(names.job_key(JOB), "status", "queued")
    second = claim(redis, "w2")
    assert (first, second) == (1, 2)
    assert emit(redis, events.Token("old"), attempt=first) == -1
    assert emit(redis, DONE, attempt=first, terminal="completed") == -1
    assert field(redis, "status") == "in_progress"
    assert emit(redis, events.Token("new"), attempt=second) == 0
    assert [e["x"] for _, e in stream(redis)] == ["new"]


def test_expected_status_guards_the_canceller(redis: fakeredis.FakeRedis) -> None:
    cancelled = events.Failed.of(499, "invalid_request_error", "cancelled", "The job was cancelled.")
    claim(redis)
    # A running job is not ended by the canceller (the worker stops at its next token instead).
    assert emit(redis, cancelled, terminal="cancelled", expect="queued") == -1
    assert field(redis, "status") == "in_progress"


def test_a_queued_job_can_be_cancelled_once(redis: fakeredis.FakeRedis) -> None:
    cancelled = events.Failed.of(499, "invalid_request_error", "cancelled", "The job was cancelled.")
    assert emit(redis, cancelled, terminal="cancelled", expect="queued") == 0
    assert emit(redis, cancelled, terminal="cancelled", expect="queued") == -1
    assert field(redis, "status") == "cancelled"
    assert claim(redis) == -1
    assert len(stream(redis)) == 1


def test_emit_reports_a_cancellation_request(redis: fakeredis.FakeRedis) -> None:
    attempt = claim(redis)
    assert emit(redis, events.Token("a"), attempt=attempt) == 0
    redis.set(names.cancel_key(JOB), 1)
    assert emit(redis, events.Token("b"), attempt=attempt) == 1
    assert emit(redis, FAILED, attempt=attempt, terminal="cancelled") == 1
    assert field(redis, "status") == "cancelled"


def test_emit_refuses_an_unknown_job() -> None:
    client = fakeredis.FakeRedis()
    assert emit(client, events.Token("a")) == -1
    assert not client.exists(names.events_key(JOB))


def test_the_replay_stream_is_capped() -> None:
    settings = make_settings(stream_maxlen=16)
    client = fakeredis.FakeRedis()
    client.hset(names.job_key(JOB), mapping={"status": "in_progress", "attempt": 1})
    script = client.register_script(EMIT)
    for _ in range(200):
        keys, args = emission(settings, JOB, events.Token("x"), attempt=1)
        script(keys=keys, args=args)
    assert client.xlen(names.events_key(JOB)) < 200
    assert field(client, "seq") == "200"


# --- ORPHANED -----------------------------------------------------------------------------------------


def test_orphaned_reports_a_running_job_without_heartbeat(redis: fakeredis.FakeRedis) -> None:
    orphaned = redis.register_script(ORPHANED)
    keys = [names.job_key(JOB), names.heartbeat_key(JOB)]
    assert int(orphaned(keys=keys)) == 0
    claim(redis)
    assert int(orphaned(keys=keys)) == 0
    redis.delete(names.heartbeat_key(JOB))
    assert int(orphaned(keys=keys)) == 1
    redis.hset(names.job_key(JOB), "status", "completed")
    assert int(orphaned(keys=keys)) == 0


def test_claim_and_the_terminal_event_renew_the_records_retention(redis: fakeredis.FakeRedis) -> None:
    """A job that waited in the queue longer than its record's retention still ends with its record."""
    redis.expire(names.job_key(JOB), 5)
    keys = [names.job_key(JOB), names.heartbeat_key(JOB)]
    redis.register_script(CLAIM)(keys=keys, args=["w1", time.time(), SETTINGS.heartbeat_ttl, 200])
    assert 5 < redis.ttl(names.job_key(JOB)) <= 200

    assert emit(redis, DONE, attempt=1, terminal="completed") == 0
    assert 200 < redis.ttl(names.job_key(JOB)) <= SETTINGS.result_ttl


# --- webhooks ---------------------------------------------------------------------------------------


def _outbox(redis: fakeredis.FakeRedis) -> list[dict[str, Any]]:
    return [orjson.loads(raw) for raw in redis.lrange(names.webhook_outbox_key(), 0, -1)]


@pytest.mark.parametrize(
    ("event", "terminal", "announced"),
    [
        (events.Done({"choices": [{"finish_reason": "stop"}]}), "completed", "response.completed"),
        (events.Done({"choices": [{"finish_reason": "length"}]}), "completed", "response.incomplete"),
        (FAILED, "failed", "response.failed"),
        (events.Failed.of(499, "invalid_request_error", "cancelled", "The job was cancelled."), "cancelled",
         "response.cancelled"),
    ],
)  # fmt: skip
def test_the_end_of_a_background_response_announces_its_event(
    redis: fakeredis.FakeRedis, event: events.Event, terminal: str, announced: str
) -> None:
    redis.set(names.webhooks_enabled_key(), 1)
    redis.hset(names.job_key(JOB), mapping={"endpoint": "/v1/responses", "owner": "o1"})
    claim(redis)
    emit(redis, events.Started("w1", 3, 1), attempt=1)
    assert _outbox(redis) == []
    emit(redis, event, attempt=1, terminal=terminal)

    (entry,) = _outbox(redis)
    assert entry["type"] == announced and entry["id"] == "resp_" + JOB.removeprefix("job_") and entry["owner"] == "o1"
    emit(redis, DONE, attempt=1, terminal="completed")  # refused: still one event
    assert len(_outbox(redis)) == 1


def test_other_jobs_announce_nothing(redis: fakeredis.FakeRedis) -> None:
    redis.set(names.webhooks_enabled_key(), 1)
    redis.hset(names.job_key(JOB), mapping={"endpoint": "/v1/chat/completions"})
    claim(redis)
    emit(redis, DONE, attempt=1, terminal="completed")
    assert _outbox(redis) == []
