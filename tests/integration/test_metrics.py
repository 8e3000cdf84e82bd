"""/metrics after real traffic through the real worker: every figure moved by exactly what was sent."""

import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from shared import names
from tests.probes import wait_for
from tests.stack import MODEL, Stack

pytestmark = pytest.mark.integration

Figures = dict[tuple[str, frozenset[tuple[str, str]]], float]
CHAT = "/v1/chat/completions"
LANE = {"model": MODEL, "lane": "interactive"}


def scrape(stack: Stack) -> Figures:
    text = httpx.get(f"{stack.base_url}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(figures: Figures, name: str, **labels: str) -> float:
    return figures.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def ghost_model(stack: Stack) -> Iterator[str]:
    """A model some worker once served but none serves now: requests for it get 503."""
    with Redis.from_url(stack.redis_url) as redis:
        redis.hset(names.models_key(), "ghost-model", int(time.time()))
        yield "ghost-model"
        redis.hdel(names.models_key(), "ghost-model")


def test_metrics_move_by_what_the_traffic_did(stack: Stack, client: openai.OpenAI, ghost_model: str) -> None:
    before = scrape(stack)
    messages = [{"role": "user", "content": "Count to five."}]
    usages = [
        client.chat.completions.create(model=MODEL, messages=messages, max_tokens=6, seed=1).usage for _ in range(2)
    ]
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usages.append(chunks[-1].usage)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=2)
    with pytest.raises(openai.InternalServerError) as unavailable:
        client.chat.completions.create(model=ghost_model, messages=messages, max_tokens=2)
    assert unavailable.value.status_code == 503
    generated = sum(usage.completion_tokens for usage in usages if usage)
    prompted = sum(usage.prompt_tokens for usage in usages if usage)

    # Workers add their figures right after the terminal event a client waits for: wait for them.
    target = 3 + value(before, "llamaq_job_latency_seconds_count", **LANE)

    def recorded() -> bool:
        return value(scrape(stack), "llamaq_job_latency_seconds_count", **LANE) >= target

    wait_for(recorded, "the job figures", timeout=20, interval=0.1)
    after = scrape(stack)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("llamaq_http_requests_total", route=CHAT, method="POST", status="200") == 3
    assert delta("llamaq_http_requests_total", route=CHAT, method="POST", status="404") == 1
    assert delta("llamaq_http_requests_total", route=CHAT, method="POST", status="503") == 1
    assert delta("llamaq_rejected_requests_total", route=CHAT, status="503", model=ghost_model) == 1
    assert delta("llamaq_rejected_requests_total", route=CHAT, status="404", model="") == 0
    assert delta("llamaq_jobs_total", **LANE, state="completed") == 3
    assert delta("llamaq_jobs_total", **LANE, state="failed") == 0
    assert delta("llamaq_tokens_generated_total", **LANE) == generated
    assert delta("llamaq_prompt_tokens_total", **LANE) == prompted
    for histogram in ("queue_wait_seconds", "time_to_first_token_seconds", "job_latency_seconds"):
        assert delta(f"llamaq_{histogram}_count", **LANE) == 3
        assert delta(f"llamaq_{histogram}_bucket", **LANE, le="+Inf") == 3
        assert delta(f"llamaq_{histogram}_sum", **LANE) > 0
    # The first token cannot come before the job left the queue, nor after the job ended.
    waited, first, ended = (
        delta(f"llamaq_{name}_sum", **LANE)
        for name in ("queue_wait_seconds", "time_to_first_token_seconds", "job_latency_seconds")
    )
    assert waited <= first <= ended
    assert delta("llamaq_decode_tokens_per_second_count", **LANE) == sum(
        1 for usage in usages if usage and usage.completion_tokens > 1
    )
    assert value(after, "llamaq_workers_alive", model=MODEL) == 1
    assert value(after, "llamaq_queue_depth", **LANE) == 0
    assert value(after, "llamaq_queue_oldest_age_seconds", **LANE) == 0
    assert delta("llamaq_http_requests_total", route="/metrics", method="GET", status="200") >= 1


def test_metrics_are_open_by_default(stack: Stack) -> None:
    reply = httpx.get(f"{stack.base_url}/metrics", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
