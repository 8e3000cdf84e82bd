"""Backpressure and cancellation against real processes: a full queue says so, a client that leaves cancels."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from redis import Redis

from shared import names, rqcontract
from tests.probes import job_of, wait_for
from tests.stack import MODEL, Stack, running_stack

pytestmark = pytest.mark.integration

# At temperature 0 the tiny model counts on for hundreds of tokens: a running job to cancel.
COUNTING = [{"role": "user", "content": "List the numbers from 1 to 500 separated by commas: 1, 2, 3,"}]
TERMINAL = {"completed", "failed", "cancelled", "expired"}


def record(redis: Redis, job_id: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in redis.hgetall(names.job_key(job_id)).items()}


def _job_records(redis: Redis) -> set[bytes]:
    """Keys of job hashes, without their `:events`, `:cancel`, ... companions."""
    return {key for key in redis.scan_iter(match=names.job_key("job_*")) if key.count(b":") == 2}


def _abandoned_sync_call(stack: Stack, redis: Redis, max_tokens: int, patience: float) -> str:
    """A synchronous call whose client gives up after `patience` seconds; the id of the job it created."""
    before = _job_records(redis)
    with pytest.raises(httpx.TimeoutException):
        httpx.post(
            f"{stack.base_url}/v1/chat/completions",
            json={"model": MODEL, "messages": COUNTING, "max_tokens": max_tokens, "temperature": 0},
            timeout=httpx.Timeout(patience, connect=5.0),
        )
    created = wait_for(lambda: _job_records(redis) - before, "job recorded")
    return next(iter(created)).decode().rsplit(":", 1)[1]


def test_concurrent_requests_never_overfill_the_queue(fresh_redis_url: str, logs_dir: Path) -> None:
    limit, total = 5, 40
    with running_stack(fresh_redis_url, logs_dir, workers=0, max_queue_depth=str(limit), sync_timeout="3") as stack:
        redis = Redis.from_url(fresh_redis_url)
        # A registered worker that takes nothing: the queue only fills.
        redis.hset(names.models_key(), MODEL, int(time.time()))
        redis.zadd(names.model_workers_key(MODEL), {"paused": time.time() + 600})
        client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=30)
        barrier = threading.Barrier(total)

        def submit(_: int) -> str:
            barrier.wait()
            try:
                client.chat.completions.create(model=MODEL, messages=COUNTING, max_tokens=8)
            except openai.RateLimitError as exc:
                assert exc.body["code"] == "queue_full"  # type: ignore[index]
                assert int(exc.response.headers["retry-after"]) >= 1
                return "full"
            except openai.APIStatusError as exc:
                assert exc.status_code == 504 and "job_" in exc.message
                return "admitted"
            return "answered"

        with ThreadPoolExecutor(total) as pool:
            outcomes = list(pool.map(submit, range(total)))
        assert outcomes.count("admitted") == limit and outcomes.count("full") == total - limit
        assert redis.llen(rqcontract.queue_key(MODEL, names.INTERACTIVE)) == limit

        redis.zadd(names.model_workers_key(MODEL), {"paused": time.time() - 1})
        with pytest.raises(openai.InternalServerError) as refused:
            client.chat.completions.create(model=MODEL, messages=COUNTING, max_tokens=8)
        assert refused.value.status_code == 503 and refused.value.body["code"] == "no_workers"  # type: ignore[index]
        redis.close()


def test_a_stream_that_disconnects_stops_its_job_and_frees_the_worker(
    stack: Stack, client: openai.OpenAI, record_property
) -> None:  # type: ignore[no-untyped-def]
    redis = Redis.from_url(stack.redis_url)
    stream = client.chat.completions.create(
        model=MODEL, messages=COUNTING, max_tokens=400, temperature=0, seed=1, stream=True
    )
    received, job_id = 0, ""
    for chunk in stream:
        job_id = job_of(chunk.id)
        if chunk.choices and chunk.choices[0].delta.content:
            received += 1
        if received >= 5:
            break
    stream.close()
    state = wait_for(lambda: (r := record(redis, job_id)).get("status") in TERMINAL and r, "job ended")
    assert state["status"] == "cancelled"
    generated = int(state["tokens"])
    assert received <= generated < 400
    # How far generation ran on after the client left (reported, not a pass/fail line).
    record_property("tokens_after_disconnect", generated - received)
    print(f"tokens generated after the disconnect: {generated - received}")
    # The worker is free again: the next request is answered.
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert reply.choices[0].finish_reason in ("stop", "length")
    redis.close()


def _slots(redis: Redis) -> int:
    """How many jobs the model's live workers generate at once."""
    return int(redis.zcount(names.model_slots_key(MODEL), time.time(), "+inf"))


def test_a_waiting_client_that_leaves_cancels_its_queued_job(stack: Stack, client: openai.OpenAI) -> None:
    redis = Redis.from_url(stack.redis_url)
    # Keep every slot of the only worker busy with a long stream.
    streams = [
        client.chat.completions.create(model=MODEL, messages=COUNTING, max_tokens=1000, temperature=0, stream=True)
        for _ in range(_slots(redis))
    ]
    busy_jobs = [job_of(next(iter(stream)).id) for stream in streams]
    # A synchronous call that waits behind it, and whose client gives up after a second.
    waiting_job = _abandoned_sync_call(stack, redis, max_tokens=50, patience=1.0)
    state = wait_for(lambda: (r := record(redis, waiting_job)).get("status") in TERMINAL and r, "queued job ended")
    assert state["status"] == "cancelled"
    assert state["attempt"] == "0" and "started_at" not in state
    assert redis.lpos(rqcontract.queue_key(MODEL, names.INTERACTIVE), waiting_job) is None
    for stream in streams:
        stream.close()
    wait_for(lambda: all(record(redis, job).get("status") in TERMINAL for job in busy_jobs), "busy jobs ended")
    # The worker is idle again and never picked the cancelled job up.
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert record(redis, waiting_job)["attempt"] == "0"
    redis.close()


def test_a_waiting_client_that_leaves_stops_its_running_job(stack: Stack) -> None:
    redis = Redis.from_url(stack.redis_url)
    job_id = _abandoned_sync_call(stack, redis, max_tokens=400, patience=1.5)
    state = wait_for(lambda: (r := record(redis, job_id)).get("status") in TERMINAL and r, "job ended")
    assert state["status"] == "cancelled" and state["attempt"] == "1", (
        state["tokens"],
        state.get("terminal", "")[:300],
    )
    assert 0 < int(state["tokens"]) < 400
    redis.close()


@pytest.mark.slow
def test_a_small_overload_run_ends_every_request_cleanly() -> None:
    """`bench/overload.py` at 120 requests: only 200/202/429/503, no hang, every accepted job terminal."""
    from bench.overload import run

    report = run(requests=120)
    statuses = {status for counts in report.by_kind.values() for status in counts}
    assert statuses <= {"200", "202", "429", "503"}
    assert sum(sum(counts.values()) for counts in report.by_kind.values()) == 120
    assert report.server_errors == report.hangs == report.unfinished_streams == 0
    assert report.background_accepted > 0
    assert sum(report.background_terminal.values()) == report.background_accepted
    assert report.live_samples > 0
