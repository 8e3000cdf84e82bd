"""GET /v1/models follows the live workers; /health/live and /health/ready; unknown models are 404."""

import signal
from pathlib import Path

import httpx
import openai
import pytest
from redis import Redis

from shared import names
from tests.probes import poll
from tests.spec import assert_conforms
from tests.stack import MODEL, Stack, running_stack

pytestmark = pytest.mark.integration


def model_ids(base_url: str) -> list[str]:
    body = httpx.get(f"{base_url}/v1/models", timeout=5).json()
    assert_conforms("ListModelsResponse", body)
    return [model["id"] for model in body["data"]]


def ready_workers(base_url: str) -> int:
    body = httpx.get(f"{base_url}/health/ready", timeout=5).json()
    return int(body["models"].get(MODEL, {}).get("workers", 0))


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    raw = client.models.with_raw_response.list()
    body = raw.http_response.json()
    assert_conforms("ListModelsResponse", body)
    for model in body["data"]:
        assert_conforms("Model", model)
    assert MODEL in [model.id for model in raw.parse()]
    one = client.models.with_raw_response.retrieve(MODEL)
    assert_conforms("Model", one.http_response.json())
    assert one.parse().id == MODEL and one.parse().object == "model"


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as listed:
        client.models.retrieve("no-such-model")
    with pytest.raises(openai.NotFoundError) as chat:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError) as legacy:
        client.completions.create(model="no-such-model", prompt="hi", stream=True)
    for caught in (listed, chat, legacy):
        assert_conforms("ErrorResponse", caught.value.response.json())
        assert caught.value.code == "model_not_found" and caught.value.param == "model"


def test_live_and_ready(stack: Stack) -> None:
    live = httpx.get(f"{stack.base_url}/health/live", timeout=5)
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = httpx.get(f"{stack.base_url}/health/ready", timeout=5)
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["redis"] == "ok"
    served = body["models"][MODEL]
    assert served["workers"] == sum(1 for worker in stack.workers if worker.poll() is None)
    assert 0 <= served["busy"] <= served["workers"]
    assert set(served["queued"]) == set(names.LANES)


def test_stopped_and_killed_workers_leave_the_list(fresh_redis_url: str, logs_dir: Path) -> None:
    overrides = {"heartbeat_ttl": "2", "heartbeat_interval": "0.25"}
    with (
        running_stack(fresh_redis_url, logs_dir, workers=2, **overrides) as stack,
        Redis.from_url(fresh_redis_url) as redis,
    ):
        assert ready_workers(stack.base_url) == 2 and model_ids(stack.base_url) == [MODEL]
        names_before = {name.decode() for name in redis.zrange(names.model_workers_key(MODEL), 0, -1)}
        stopped, killed = stack.workers

        stopped.send_signal(signal.SIGTERM)
        assert stopped.wait(30) == 0
        # A clean stop deregisters before the process exits: no wait for a heartbeat to lapse.
        assert ready_workers(stack.base_url) == 1 and model_ids(stack.base_url) == [MODEL]
        left = {name.decode() for name in redis.zrange(names.model_workers_key(MODEL), 0, -1)}
        assert len(left) == 1 and left < names_before
        (gone,), (remaining,) = names_before - left, left
        assert not redis.exists(names.worker_key(gone))

        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        assert poll(lambda: model_ids(stack.base_url) == [], timeout=20, interval=0.1), "a killed worker stays listed"
        assert ready_workers(stack.base_url) == 0
        assert poll(lambda: not redis.exists(names.worker_key(remaining)), timeout=20, interval=0.1)

        with openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=30) as client:
            with pytest.raises(openai.NotFoundError) as caught:
                client.models.retrieve(MODEL)
            assert caught.value.code == "model_not_found"
            # A model seen before but with no worker right now is retryable: 503, not a hang and not a 404.
            with pytest.raises(openai.InternalServerError) as chat:
                client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
            assert chat.value.status_code == 503 and chat.value.code == "no_workers"
