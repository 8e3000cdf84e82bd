"""Two different GGUF chat models on one Redis and one API, each with its own worker, queue limit and figures.

SmolLM2-135M (the bundled model, the API's limits) and Gemma 3 270M (the `gemma` extra; its worker sets
its own `LLAMAQ_MAX_QUEUE_DEPTH=2` and one slot). The official client lists both with what they can do;
each answers from its own worker; Gemma's full queue is 429 + Retry-After while SmolLM2 still answers; an
idle worker costs no CPU.
"""

import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from bench.idle import cpu_seconds
from shared import names
from shared.redis_server import RedisServer
from tests.probes import job_of, poll
from tests.spec import assert_conforms
from tests.stack import MODEL, Stack, gemma_gguf, running_stack

pytestmark = pytest.mark.integration

GEMMA = "gemma-3-270m"
GEMMA_LIMIT = 2
HI = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("models")
    server = RedisServer(directory / "redis", persist=False)
    try:
        with running_stack(server.start(), directory / "logs") as stack:
            # A long registration: the test pauses this worker (SIGSTOP) and it must stay listed meanwhile.
            gemma = {"model_path": str(gemma_gguf()), "model_name": GEMMA, "slots": "1", "heartbeat_ttl": "60"}
            stack.add_worker(**gemma, max_queue_depth=str(GEMMA_LIMIT))
            stack.wait_workers(1, timeout=120, model=GEMMA)
            yield stack
    finally:
        server.stop()


def _client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


def _workers_of(stack: Stack, model: str) -> set[str]:
    with Redis.from_url(stack.redis_url) as redis:
        return {name.decode() for name in redis.zrange(names.model_workers_key(model), 0, -1)}


def _served_by(stack: Stack, job_id: str) -> str:
    with Redis.from_url(stack.redis_url) as redis:
        return str(redis.hget(names.job_key(job_id), "worker").decode())


def _sample(stack: Stack, name: str, **labels: str) -> float:
    text = httpx.get(f"{stack.base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()):
                return sample.value
    return 0.0


def test_models_lists_both_with_what_they_can_do(two_models: Stack) -> None:
    with _client(two_models) as client:
        raw = client.models.with_raw_response.list()
        body = raw.http_response.json()
        listed = {model.id: model.model_dump() for model in raw.parse()}
    assert_conforms("ListModelsResponse", body)
    for entry in body["data"]:
        assert_conforms("Model", entry)
    assert set(listed) == {MODEL, GEMMA}
    for model, slots, limit in ((MODEL, 4, 64), (GEMMA, 1, GEMMA_LIMIT)):
        entry = listed[model]
        assert (entry["kind"], entry["capabilities"]) == ("chat", ["chat", "completions"])
        assert (entry["workers"], entry["slots"], entry["context_length"]) == (1, slots, 2048)
        assert entry["max_queue_depth"] == limit


def test_each_model_answers_from_its_own_worker(two_models: Stack) -> None:
    with _client(two_models) as client:
        for model in (MODEL, GEMMA):
            chat = client.chat.completions.create(model=model, messages=HI, max_tokens=8, temperature=0)
            legacy = client.completions.create(model=model, prompt="The sea is", max_tokens=8, temperature=0)
            assert chat.model == model and chat.usage is not None and chat.usage.completion_tokens > 0
            assert legacy.model == model and legacy.choices[0].text
            for reply_id in (chat.id, legacy.id):
                assert _served_by(two_models, job_of(reply_id)) in _workers_of(two_models, model)
    assert not _workers_of(two_models, MODEL) & _workers_of(two_models, GEMMA)


def test_an_idle_models_worker_costs_no_cpu_while_the_other_serves(two_models: Stack) -> None:
    idle = two_models.workers[1]
    before, started = cpu_seconds(idle.pid), time.monotonic()
    with _client(two_models) as client:
        while time.monotonic() - started < 10:
            client.chat.completions.create(model=MODEL, messages=HI, max_tokens=16)
    used = cpu_seconds(idle.pid) - before
    assert used < 0.5, f"the idle worker used {used:.2f} s of CPU in {time.monotonic() - started:.0f} s"


def test_a_full_queue_is_429_for_its_model_only(two_models: Stack) -> None:
    gemma = two_models.workers[1]
    outcomes: list[Any] = []
    client = _client(two_models)

    def ask() -> None:
        try:
            outcomes.append(client.chat.completions.create(model=GEMMA, messages=HI, max_tokens=4))
        except openai.APIError as exc:
            outcomes.append(exc)

    before = _sample(two_models, "llamaq_rejected_requests_total", model=GEMMA, status="429")
    gemma.send_signal(signal.SIGSTOP)  # its jobs wait in its queue; it stays registered (long heartbeat TTL)
    threads: list[threading.Thread] = []
    try:
        for _ in range(GEMMA_LIMIT + 3):  # one more than the limit, plus those a paused loop may have popped
            threads.append(threading.Thread(target=ask))
            threads[-1].start()
            assert poll(lambda: len(outcomes) or not _queued_less_than(two_models, len(threads)), 10)
            if any(isinstance(outcome, openai.RateLimitError) for outcome in outcomes):
                break
        (refused,) = [outcome for outcome in outcomes if isinstance(outcome, openai.RateLimitError)]
        assert refused.code == "queue_full" and GEMMA in refused.message
        assert 1 <= int(refused.response.headers["retry-after"]) <= 600
        assert _sample(two_models, "llamaq_queue_depth", model=GEMMA, lane="interactive") >= GEMMA_LIMIT
        # The other model is unaffected: it answers, and its figures show no refusal.
        reply = client.chat.completions.create(model=MODEL, messages=HI, max_tokens=4)
        assert _served_by(two_models, job_of(reply.id)) in _workers_of(two_models, MODEL)
        assert _sample(two_models, "llamaq_rejected_requests_total", model=GEMMA, status="429") == before + 1
        assert _sample(two_models, "llamaq_rejected_requests_total", model=MODEL, status="429") == 0
    finally:
        gemma.send_signal(signal.SIGCONT)
    for thread in threads:
        thread.join(120)
    client.close()
    answered = [outcome for outcome in outcomes if not isinstance(outcome, openai.APIError)]
    assert len(answered) == len(threads) - 1, outcomes
    assert {_served_by(two_models, job_of(reply.id)) for reply in answered} == _workers_of(two_models, GEMMA)
    assert _sample(two_models, "llamaq_slots_total", model=GEMMA) == 1
    assert _sample(two_models, "llamaq_slots_total", model=MODEL) == 4


def _queued_less_than(stack: Stack, count: int) -> bool:
    """Fewer than `count` of Gemma's jobs are recorded yet (the last request is still on its way in)."""
    with Redis.from_url(stack.redis_url) as redis:
        jobs = [key for key in redis.scan_iter(match=names.job_key("*")) if key.count(b":") == 2]
        mine = [
            key for key in jobs if redis.hget(key, "model") == GEMMA.encode() and redis.hget(key, "status") == b"queued"
        ]
    return len(mine) < count
