"""Two-lane dequeue on a real Redis: interactive first, and a popped job is never out of Redis's sight."""

import threading
from collections.abc import Iterator

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.serializers import JSONSerializer

from api.unclaimed import rescue_unclaimed
from shared import names, rqcontract
from shared.payload import JOB_FUNCTION
from shared.settings import Settings
from tests.fakes import MODEL
from worker.context import WorkerContext
from worker.runner import LaneQueue, build_worker
from worker.sink import Scripts


@pytest.fixture
def redis(fresh_redis_url: str) -> Iterator[Redis]:
    with Redis.from_url(fresh_redis_url) as client:
        yield client


def _lanes(redis: Redis) -> list[LaneQueue]:
    return [
        LaneQueue(names.queue_name(MODEL, lane), connection=redis, serializer=JSONSerializer) for lane in names.LANES
    ]


def _enqueue(redis: Redis, lane: str, job_id: str) -> None:
    queue = Queue(names.queue_name(MODEL, lane), connection=redis, serializer=JSONSerializer)
    queue.enqueue(JOB_FUNCTION, {"id": job_id}, job_id=job_id, description="llamaq generation")


def _take(redis: Redis, timeout: int | None = None) -> str | None:
    taken = LaneQueue.dequeue_any(_lanes(redis), timeout, connection=redis, serializer=JSONSerializer)
    return None if taken is None else taken[0].id


def test_interactive_work_is_taken_before_batch_work_queued_earlier(redis: Redis) -> None:
    _enqueue(redis, names.BATCH, "job_b1")
    _enqueue(redis, names.BATCH, "job_b2")
    _enqueue(redis, names.INTERACTIVE, "job_i1")

    assert [_take(redis) for _ in range(4)] == ["job_i1", "job_b1", "job_b2", None]


def test_a_popped_job_is_in_the_intermediate_list_until_it_starts(redis: Redis) -> None:
    _enqueue(redis, names.BATCH, "job_b1")

    assert _take(redis) == "job_b1"
    assert redis.llen(rqcontract.queue_key(MODEL, names.BATCH)) == 0
    assert redis.lrange(rqcontract.intermediate_key(MODEL, names.BATCH), 0, -1) == [b"job_b1"]


def test_an_idle_taker_sees_batch_work_that_arrives_while_it_waits(redis: Redis) -> None:
    with pytest.raises(DequeueTimeout):
        _take(redis, timeout=1)
    arrival = threading.Timer(0.3, _enqueue, (redis, names.BATCH, "job_late"))
    arrival.start()
    try:
        assert _take(redis, timeout=10) == "job_late"
    finally:
        arrival.join()


def test_the_worker_runs_interactive_jobs_first_and_leaves_nothing_behind(redis: Redis) -> None:
    for index in range(3):
        _enqueue(redis, names.BATCH, f"job_b{index}")
    for index in range(2):
        _enqueue(redis, names.INTERACTIVE, f"job_i{index}")
    settings = Settings(redis_url="redis://unused", model_name=MODEL)
    # No llamaq records: each job is refused at its claim, so no model is needed to run the loop.
    context = WorkerContext(settings, redis, None, Scripts(redis), "lanes-worker")  # type: ignore[arg-type]

    build_worker(settings, redis, context, context.name).work(burst=True)

    ids = ["job_i0", "job_i1", "job_b0", "job_b1", "job_b2"]
    jobs = Job.fetch_many(ids, connection=redis, serializer=JSONSerializer)
    started = [job.started_at for job in jobs if job is not None]
    assert len(started) == 5 and started == sorted(started)
    for lane in names.LANES:
        assert redis.llen(rqcontract.queue_key(MODEL, lane)) == 0
        assert redis.llen(rqcontract.intermediate_key(MODEL, lane)) == 0
        assert redis.zcard(rqcontract.started_key(MODEL, lane)) == 0


async def test_a_job_popped_by_a_worker_that_died_before_claiming_it_goes_back(fresh_redis_url: str) -> None:
    with Redis.from_url(fresh_redis_url) as redis:
        for job_id in ("job_popped", "job_registered", "job_claimed"):
            _enqueue(redis, names.BATCH, job_id)
            redis.hset(names.job_key(job_id), mapping={"status": "queued", "attempt": 0})
            assert _take(redis) == job_id
        # Registered as started (the step after the pop), then the worker died.
        redis.lrem(rqcontract.intermediate_key(MODEL, names.BATCH), 1, "job_registered")
        redis.zadd(rqcontract.started_key(MODEL, names.BATCH), {"job_registered:exec1": 9e9})
        redis.hset(names.job_key("job_claimed"), mapping={"status": "in_progress", "attempt": 1})
        client = AsyncRedis.from_url(fresh_redis_url)
        try:
            assert await rescue_unclaimed(client, MODEL, names.BATCH, stale=0) == 0  # first sighting
            assert await rescue_unclaimed(client, MODEL, names.BATCH, stale=0) == 2
        finally:
            await client.aclose()

        lane = [raw.decode() for raw in redis.lrange(rqcontract.queue_key(MODEL, names.BATCH), 0, -1)]
        assert sorted(lane) == ["job_popped", "job_registered"]
        assert redis.lrange(rqcontract.intermediate_key(MODEL, names.BATCH), 0, -1) == [b"job_claimed"]
        assert redis.zcard(rqcontract.started_key(MODEL, names.BATCH)) == 0
        assert sorted(filter(None, (_take(redis) for _ in range(3)))) == ["job_popped", "job_registered"]


async def test_a_job_just_popped_by_a_live_worker_is_left_alone(fresh_redis_url: str) -> None:
    with Redis.from_url(fresh_redis_url) as redis:
        _enqueue(redis, names.BATCH, "job_fresh")
        redis.hset(names.job_key("job_fresh"), mapping={"status": "queued", "attempt": 0})
        assert _take(redis) == "job_fresh"
        client = AsyncRedis.from_url(fresh_redis_url)
        try:
            for _ in range(3):
                assert await rescue_unclaimed(client, MODEL, names.BATCH, stale=3600) == 0
        finally:
            await client.aclose()

        assert redis.lrange(rqcontract.intermediate_key(MODEL, names.BATCH), 0, -1) == [b"job_fresh"]
        assert redis.llen(rqcontract.queue_key(MODEL, names.BATCH)) == 0
