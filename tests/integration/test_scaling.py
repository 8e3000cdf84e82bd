"""Scaling out: two `llamaq worker` processes on one queue share concurrent requests, both busy at once."""

import threading
from collections.abc import Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from shared import names
from shared.redis_server import RedisServer
from tests.probes import job_of, poll
from tests.stack import MODEL, Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("scaling")
    server = RedisServer(directory / "redis", persist=False)
    try:
        # Frequent heartbeats: the busy gauge follows the workers' state closely.
        with running_stack(server.start(), directory / "logs", workers=2, HEARTBEAT_INTERVAL="0.2") as stack:
            yield stack
    finally:
        server.stop()


def gauge(stack: Stack, name: str) -> float:
    text = httpx.get(f"{stack.base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("model") == MODEL:
                return sample.value
    return 0.0


def test_two_workers_on_one_queue_serve_concurrent_requests(two_workers: Stack) -> None:
    client = openai.OpenAI(base_url=f"{two_workers.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
    ids: list[str] = []
    failures: list[BaseException] = []

    def ask(n: int) -> None:
        try:
            reply = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"Tell a long story about ship number {n}."}],
                max_tokens=80,
                temperature=0,
            )
            ids.append(job_of(reply.id))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    busy: list[float] = [0.0]

    def both_busy_or_done() -> bool:
        busy.append(gauge(two_workers, "llamaq_workers_busy"))
        return max(busy) >= 2 or not any(thread.is_alive() for thread in threads)

    poll(both_busy_or_done, timeout=60)
    busy_seen = max(busy)
    for thread in threads:
        thread.join(120)
    assert not failures and len(ids) == 6
    assert gauge(two_workers, "llamaq_workers_alive") == 2
    assert busy_seen == 2
    with Redis.from_url(two_workers.redis_url) as redis:
        served_by = {redis.hget(names.job_key(job_id), "worker") for job_id in ids}
        registered = set(redis.zrange(names.model_workers_key(MODEL), 0, -1))
    assert len(served_by) == 2 and served_by == registered
