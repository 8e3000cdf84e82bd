"""Job figures in Redis: what workers and EMIT add, and the Prometheus families the API renders."""

import time

import fakeredis
import pytest
from prometheus_client.core import Metric

from api.fleet import fleet_families
from api.metrics import HttpMetrics
from shared import events, jobmetrics, names, rqcontract
from shared.emission import emission
from shared.scripts import EMIT
from shared.settings import Settings
from shared.states import Status
from tests.fakes import MODEL
from worker.metrics import JobClock


def samples(families: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


def test_recorded_jobs_become_counters_and_cumulative_histograms() -> None:
    redis = fakeredis.FakeRedis()
    for wait in (0.02, 0.3, 700.0):
        figures = jobmetrics.JobFigures(MODEL, "interactive", 10, 4, {"queue_wait_seconds": wait})
        with redis.pipeline(transaction=False) as pipe:
            jobmetrics.record(pipe, figures)
            pipe.execute()
    got = samples(list(jobmetrics.families(redis.hgetall(names.metrics_key()))))
    labels = (("lane", "interactive"), ("model", MODEL))
    assert got[("llamaq_tokens_generated_total", labels)] == 12
    assert got[("llamaq_prompt_tokens_total", labels)] == 30
    assert got[("llamaq_queue_wait_seconds_bucket", (*labels[:1], ("le", "0.025"), *labels[1:]))] == 1
    assert got[("llamaq_queue_wait_seconds_bucket", (*labels[:1], ("le", "0.5"), *labels[1:]))] == 2
    assert got[("llamaq_queue_wait_seconds_bucket", (*labels[:1], ("le", "600"), *labels[1:]))] == 2
    assert got[("llamaq_queue_wait_seconds_bucket", (*labels[:1], ("le", "+Inf"), *labels[1:]))] == 3
    assert got[("llamaq_queue_wait_seconds_count", labels)] == 3
    assert got[("llamaq_queue_wait_seconds_sum", labels)] == pytest.approx(700.32)


def test_model_ids_with_separators_keep_their_labels() -> None:
    redis = fakeredis.FakeRedis()
    with redis.pipeline(transaction=False) as pipe:
        jobmetrics.record(pipe, jobmetrics.JobFigures("org|odd:model", "batch", 1, 2, {"job_latency_seconds": 1.5}))
        pipe.execute()
    got = samples(list(jobmetrics.families(redis.hgetall(names.metrics_key()))))
    assert got[("llamaq_tokens_generated_total", (("lane", "batch"), ("model", "org|odd:model")))] == 2
    assert got[("llamaq_job_latency_seconds_count", (("lane", "batch"), ("model", "org|odd:model")))] == 1


def test_negative_or_missing_timings_are_not_recorded() -> None:
    redis = fakeredis.FakeRedis()
    with redis.pipeline(transaction=False) as pipe:
        jobmetrics.record(pipe, jobmetrics.JobFigures(MODEL, "interactive", 0, 0, {"queue_wait_seconds": -1.0}))
        pipe.execute()
    assert not any(b"|h|" in field for field in redis.hgetall(names.metrics_key()))


def test_terminal_events_count_jobs_by_end_state_once() -> None:
    redis = fakeredis.FakeRedis()
    settings = Settings(redis_url="redis://unused")
    emit = redis.register_script(EMIT)
    for job_id, status in (("job_a", Status.COMPLETED), ("job_b", Status.CANCELLED), ("job_c", Status.COMPLETED)):
        redis.hset(names.job_key(job_id), mapping={"status": "in_progress", "model": MODEL, "lane": "batch"})
        event = events.Done({"x": 1}) if status == Status.COMPLETED else events.Failed.of(499, "t", "cancelled", "m")
        for _ in range(2):  # the second terminal event is refused and must not count
            keys, args = emission(settings, job_id, event, terminal=status)
            emit(keys=keys, args=args)
    got = samples(list(jobmetrics.families(redis.hgetall(names.metrics_key()))))
    assert got[("llamaq_jobs_total", (("lane", "batch"), ("model", MODEL), ("state", "completed")))] == 2
    assert got[("llamaq_jobs_total", (("lane", "batch"), ("model", MODEL), ("state", "cancelled")))] == 1


def test_job_clock_measures_from_the_enqueue_time() -> None:
    clock = JobClock(enqueued=time.time() - 2.0)
    clock.prompt_tokens = 7
    for count in range(1, 6):
        clock.token(count)
    figures = clock.figures(MODEL, "interactive")
    assert figures.completion_tokens == 5 and figures.prompt_tokens == 7
    assert 2.0 <= figures.timings["queue_wait_seconds"] <= figures.timings["time_to_first_token_seconds"]
    assert figures.timings["time_to_first_token_seconds"] <= figures.timings["job_latency_seconds"]
    assert figures.timings["decode_tokens_per_second"] > 0


def test_job_clock_outside_rq_has_no_queue_wait() -> None:
    figures = JobClock(enqueued=None).figures(MODEL, "batch")
    assert "queue_wait_seconds" not in figures.timings and "time_to_first_token_seconds" not in figures.timings


async def test_fleet_reports_depth_oldest_age_and_worker_states() -> None:
    redis = fakeredis.FakeAsyncRedis()
    now = time.time()
    await redis.hset(names.models_key(), MODEL, int(now))
    await redis.zadd(names.model_workers_key(MODEL), {"w1": now + 10, "w2": now + 10, "gone": now - 10})
    await redis.hset(names.worker_key("w1"), "state", "busy")
    await redis.hset(names.worker_key("w2"), "state", "idle")
    await redis.hset(names.worker_key("gone"), "state", "busy")
    await redis.rpush(rqcontract.queue_key(MODEL, "batch"), "job_old", "job_new")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(now - 30))
    await redis.hset(rqcontract.job_key("job_old"), "enqueued_at", stamp)
    got = samples(await fleet_families(redis))
    batch = (("lane", "batch"), ("model", MODEL))
    assert got[("llamaq_queue_depth", batch)] == 2
    assert got[("llamaq_queue_depth", (("lane", "interactive"), ("model", MODEL)))] == 0
    assert 29 <= got[("llamaq_queue_oldest_age_seconds", batch)] < 300
    assert got[("llamaq_workers_alive", (("model", MODEL),))] == 2
    assert got[("llamaq_workers_busy", (("model", MODEL),))] == 1


def test_rejections_are_counted_apart() -> None:
    http = HttpMetrics()
    for status in (200, 429, 429, 503, 400):
        http.observe("/v1/chat/completions", "POST", status, 0.01)
    http.observe("/v1/chat/completions", "POST", 429, 0.01, model="other")
    got = samples(http.families())
    route = ("route", "/v1/chat/completions")
    assert got[("llamaq_rejected_requests_total", (("model", ""), route, ("status", "429")))] == 2
    assert got[("llamaq_rejected_requests_total", (("model", "other"), route, ("status", "429")))] == 1
    assert got[("llamaq_rejected_requests_total", (("model", ""), route, ("status", "503")))] == 1
    key = ("llamaq_http_requests_total", (("method", "POST"), ("route", "/v1/chat/completions"), ("status", "400")))
    assert got[key] == 1
