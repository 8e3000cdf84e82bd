"""Webhooks from a real stack to local receivers, checked with the official client's `webhooks.unwrap`."""

import base64
import contextlib
import html
import io
import signal
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai.types.webhooks import BatchCompletedWebhookEvent
from redis import Redis

from shared import names
from tests.integration.test_readme_examples import DEFAULT_BASE, example
from tests.probes import wait_for
from tests.receiver import Received, receiving
from tests.stack import MODEL, Stack, free_port, running_stack, wait_http

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"integration-test-secret-32-bytes").decode()
FAST_RETRIES = {"webhook_retry_base": "0.3", "webhook_retry_max_delay": "1", "webhook_max_attempts": "4"}


def _client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=60)


def _batch(client: openai.OpenAI, count: int = 2) -> str:
    lines = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": f"Say {i}."}], "max_tokens": 3},
        }
        for i in range(count)
    ]
    content = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id


def _dead_letters(stack: Stack, count: int) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        data: list[dict[str, Any]] = httpx.get(f"{stack.base_url}/v1/webhooks/dead_letters", timeout=5).json()["data"]
        return data if len(data) >= count else None

    return wait_for(enough, f"{count} dead letter(s)", 60, 0.1)


def _readme_handler(stack: Stack, got: Received) -> str:
    """What the README's receiver prints for `got`."""
    code = example("webhook").replace(DEFAULT_BASE, f"{stack.base_url}/v1").replace('"whsec_..."', repr(SECRET))
    namespace: dict[str, Any] = {}
    exec(compile(code, "README:webhook", "exec"), namespace)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        namespace["on_webhook"](got.body, got.headers)
    namespace["client"].close()
    return printed.getvalue()


def _flaky(got: list[Received]) -> int:
    return 500 if len(got) <= 2 else 200


def test_batch_completed_is_signed_retried_never_redirected_and_dead_lettered(
    fresh_redis_url: str, logs_dir: Any
) -> None:
    with (
        receiving() as ok,
        receiving(answer=_flaky) as flaky,
        receiving(answer=lambda _: 302) as moved,
        receiving(answer=lambda _: 500) as broken,
    ):
        urls = ",".join([ok.url(), flaky.url(), moved.url("/moved"), broken.url()])
        overrides = {"webhook_urls": urls, "webhook_secret": SECRET, "webhook_allow_private": "true", **FAST_RETRIES}
        overrides["dashboard_keys"] = "dashboard-key"
        with running_stack(fresh_redis_url, logs_dir, **overrides) as stack, _client(stack) as client:
            batch_id = _batch(client)
            (got,) = ok.wait(1, timeout=120)
            event = client.webhooks.unwrap(got.body, got.headers, secret=SECRET)
            assert isinstance(event, BatchCompletedWebhookEvent) and event.data.id == batch_id
            assert client.batches.retrieve(batch_id).status == "completed"
            assert orjson.loads(got.body) == {
                "id": event.id, "object": "event", "created_at": event.created_at,
                "type": "batch.completed", "data": {"id": batch_id},
            }  # fmt: skip
            with pytest.raises(openai.InvalidWebhookSignatureError):
                client.webhooks.unwrap(got.body.replace(b"completed", b"cancelled"), got.headers, secret=SECRET)

            assert _readme_handler(stack, got) == f"{batch_id} completed\n"

            attempts = flaky.wait(3)
            assert {attempt.headers["webhook-id"] for attempt in attempts} == {event.id}
            assert client.webhooks.unwrap(attempts[-1].body, attempts[-1].headers, secret=SECRET).id == event.id

            letters = _dead_letters(stack, 2)
            assert sorted(letter["url"] for letter in letters) == sorted([moved.url(""), broken.url("")])
            assert {letter["attempts"] for letter in letters} == {4}
            assert {letter["event_id"] for letter in letters} == {event.id}
            assert [attempt.path for attempt in moved.received] == ["/moved"] * 4  # the redirect never followed
            metrics = httpx.get(f"{stack.base_url}/metrics", timeout=5).text
            assert 'llamaq_webhook_deliveries_total{outcome="delivered"} 2.0' in metrics
            assert 'llamaq_webhook_deliveries_total{outcome="dead_lettered"} 2.0' in metrics
            assert "llamaq_webhook_dead_letters 2.0" in metrics and "llamaq_webhook_pending 0.0" in metrics
            assert len(ok.received) == 1 and len(flaky.received) == 3
            page = httpx.get(f"{stack.base_url}/dashboard/webhooks", auth=("ops", "dashboard-key"), timeout=10)
            assert page.status_code == 200 and "dead letters: 2" in page.text and "dead_lettered: 2" in page.text
            assert page.text.count(event.id) == 2 and html.escape(moved.url("")) in page.text
            assert httpx.get(f"{stack.base_url}/dashboard/webhooks", timeout=10).status_code == 401


def test_a_receiver_down_across_an_api_restart_still_gets_the_event(fresh_redis_url: str, logs_dir: Any) -> None:
    port = free_port()  # nothing listens there yet
    overrides = {
        "webhook_urls": f"http://127.0.0.1:{port}/hook", "webhook_secret": SECRET, "webhook_allow_private": "true",
        "webhook_retry_base": "3", "webhook_retry_max_delay": "3",
    }  # fmt: skip
    redis = Redis.from_url(fresh_redis_url)
    with running_stack(fresh_redis_url, logs_dir, **overrides) as stack, _client(stack) as client:
        batch_id = _batch(client, count=1)
        wait_for(lambda: redis.hget(names.webhook_stats_key(), "retried"), "a failed attempt", 120, 0.05)
        assert stack.api is not None
        stack.api.send_signal(signal.SIGTERM)
        stack.api.wait(15)
        with receiving(port) as back:
            stack.api = stack.spawn("api", "api-restarted.log")
            wait_http(f"{stack.base_url}/health/live")
            (got,) = back.wait(1, timeout=30)
        event = client.webhooks.unwrap(got.body, got.headers, secret=SECRET)
        assert isinstance(event, BatchCompletedWebhookEvent) and event.data.id == batch_id
    assert redis.zcard(names.webhook_schedule_key()) == 0
    redis.close()


def test_a_private_address_is_refused_without_the_setting(fresh_redis_url: str, logs_dir: Any) -> None:
    with receiving() as receiver:
        url = f"https://127.0.0.1:{receiver.port}/hook"
        with running_stack(fresh_redis_url, logs_dir, workers=0, webhook_urls=url, webhook_secret=SECRET) as stack:
            with _client(stack) as client:
                batch_id = _batch(client, count=1)  # no model is served: the batch fails validation
                wait_for(lambda: client.batches.retrieve(batch_id).status == "failed", "the batch to fail", 30)
            (letter,) = _dead_letters(stack, 1)
        assert letter["type"] == "batch.failed" and letter["object_id"] == batch_id
        assert letter["last_error"].startswith("refused: 127.0.0.1 is not a public address")
        assert letter["attempts"] == 1 and receiver.received == []


def test_background_responses_announce_how_they_ended(fresh_redis_url: str, logs_dir: Any) -> None:
    """`response.completed` / `incomplete` / `cancelled` for background responses; an answered one sends none."""
    with receiving() as ok:
        overrides = {"webhook_urls": ok.url(), "webhook_secret": SECRET, "webhook_allow_private": "true"}
        with running_stack(fresh_redis_url, logs_dir, **overrides) as stack, _client(stack) as client:
            client.responses.create(model=MODEL, input="Hi", max_output_tokens=4)  # answered at once: no event
            short = client.responses.create(model=MODEL, input="Hi", max_output_tokens=4, background=True)
            long = client.responses.create(
                model=MODEL, input="Count to 1000.", max_output_tokens=1500, background=True, temperature=0
            )
            wait_for(lambda: client.responses.retrieve(long.id).status == "in_progress", "long response running")
            client.responses.cancel(long.id)
            got = ok.wait(2, timeout=120)
            unwrapped = {
                (event := client.webhooks.unwrap(each.body, each.headers, secret=SECRET)).data.id: event.type
                for each in got
            }
            assert unwrapped == {short.id: "response.incomplete", long.id: "response.cancelled"}
            assert client.responses.retrieve(short.id).status == "incomplete"
            assert len(ok.received) == 2
