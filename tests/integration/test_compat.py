"""What the official SDKs do on first contact: send returned messages back as history, retry 5xx, omit
max_tokens, probe /health, list nothing yet, and meet an error in the middle of a stream."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from redis import Redis

from shared import names
from tests.probes import wait_for
from tests.spec import assert_conforms
from tests.stack import MODEL, Stack, running_stack

pytestmark = pytest.mark.integration

FIRST = {"role": "user", "content": "Name a colour."}
SECOND = {"role": "user", "content": "Another one?"}


def jobs_recorded(redis: Redis) -> int:
    return sum(1 for key in redis.scan_iter(match=names.job_key("job_*")) if key.count(b":") == 2)


def second_turn(client: openai.OpenAI, returned: Any) -> openai.types.chat.ChatCompletion:
    reply = client.chat.completions.create(model=MODEL, messages=[FIRST, returned, SECOND], max_tokens=4)
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].finish_reason in ("stop", "length")
    return reply


def test_every_returned_message_goes_back_as_history(stack: Stack, client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=[FIRST], max_tokens=4)
    message = reply.choices[0].message
    second_turn(client, message)  # the SDK's documented pattern: the object itself, `refusal: null` included
    second_turn(client, message.model_dump())  # every field, the unset ones as null (annotations, tool_calls, …)
    second_turn(client, message.model_dump(exclude_none=True))

    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        # As the npm SDK sends it: the returned JSON object untouched.
        raw = http.post("/v1/chat/completions", json={"model": MODEL, "messages": [FIRST], "max_tokens": 4}).json()
        returned = raw["choices"][0]["message"]
        assert "refusal" in returned and returned["refusal"] is None
        again = {"model": MODEL, "messages": [FIRST, returned, SECOND], "max_tokens": 4}
        assert http.post("/v1/chat/completions", json=again).status_code == 200
        # A background job's result carries the same message object.
        job = http.post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": again}).json()

        def completed() -> dict[str, Any] | None:
            polled = http.get(f"/v1/jobs/{job['id']}").json()
            assert polled["status"] in ("queued", "in_progress", "completed"), polled
            return polled if polled["status"] == "completed" else None

        polled = wait_for(completed, "the background job to complete", timeout=60)
    second_turn(client, polled["response"]["choices"][0]["message"])

    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(model=MODEL, messages=[FIRST], max_tokens=4, stream=True)
        if chunk.choices
    )
    second_turn(client, {"role": "assistant", "content": streamed, "refusal": None})
    # A message with no text (as after a tool call, or a refusal) is history too.
    second_turn(client, {"role": "assistant", "content": None, "tool_calls": []})
    second_turn(client, {"role": "assistant", "content": None, "refusal": "I can't help with that."})


def test_fields_sent_with_their_default_values_are_accepted(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[FIRST],
        max_tokens=4,
        logprobs=False,
        top_logprobs=None,
        tools=[],
        tool_choice="none",
        parallel_tool_calls=False,
        store=False,
        logit_bias={},
        n=1,
        service_tier="auto",
        metadata={},
    )
    assert reply.choices[0].finish_reason in ("stop", "length")
    legacy = client.completions.create(
        model=MODEL, prompt="Once", max_tokens=4, echo=False, best_of=1, suffix=None, logprobs=None, logit_bias={}
    )
    assert legacy.choices[0].finish_reason in ("stop", "length")


def test_a_non_default_value_is_refused_by_name(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=MODEL, messages=[FIRST], max_tokens=4, store=True)
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == "store"
    assert "only its default (false or null) is accepted" in error["message"]


@pytest.fixture
def short_deadlines(fresh_redis_url: str, logs_dir: Path) -> Iterator[Stack]:
    """Synchronous calls wait 3 s; a chat request without max_tokens gets 6 tokens."""
    with running_stack(fresh_redis_url, logs_dir, sync_timeout="3", default_max_tokens="6") as stack:
        yield stack


def test_a_504_is_not_retried_by_the_sdk_and_names_its_job(short_deadlines: Stack, fresh_redis_url: str) -> None:
    # The SDK's defaults: 2 retries on 408, 409, 429 and 5xx, unless the answer says x-should-retry: false.
    with (
        openai.OpenAI(base_url=f"{short_deadlines.base_url}/v1", api_key="unused", timeout=60) as client,
        Redis.from_url(fresh_redis_url) as redis,
    ):
        assert client.max_retries == 2
        with pytest.raises(openai.APIStatusError) as timed_out:
            # Greedy counting goes on for the whole budget (about 20 s): it never ends early by itself.
            client.completions.create(model=MODEL, prompt="1, 2, 3, 4, 5,", temperature=0, max_tokens=1500)
        response = timed_out.value.response
        assert response.status_code == 504 and response.headers["x-should-retry"] == "false"
        job_id = response.headers["llamaq-job-id"]
        assert f"GET /v1/jobs/{job_id}" in timed_out.value.message
        assert jobs_recorded(redis) == 1, "the SDK sent the call again"
        with httpx.Client(base_url=short_deadlines.base_url) as http:
            assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "in_progress"
            http.post(f"/v1/jobs/{job_id}/cancel")


def test_a_chat_request_without_max_tokens_stops_at_the_default_budget(short_deadlines: Stack) -> None:
    with openai.OpenAI(base_url=f"{short_deadlines.base_url}/v1", api_key="unused", max_retries=0) as client:
        reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Tell a story."}])
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage is not None and reply.usage.completion_tokens == 6
        explicit = client.chat.completions.create(model=MODEL, messages=[FIRST], max_tokens=9, temperature=0)
        assert explicit.usage is not None and explicit.usage.completion_tokens <= 9


def test_health_answers_where_peers_probe_it(stack: Stack) -> None:
    with httpx.Client(base_url=stack.base_url) as http:
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ready"
        assert health.json() == http.get("/health/ready").json()


def test_empty_lists_conform_to_the_spec(fresh_redis_url: str, logs_dir: Path) -> None:
    with running_stack(fresh_redis_url, logs_dir, workers=0) as stack, httpx.Client(base_url=stack.base_url) as http:
        files = http.get("/v1/files").json()
        assert files["data"] == [] and files["has_more"] is False
        assert_conforms("ListFilesResponse", files)
        batches = http.get("/v1/batches").json()
        assert batches["data"] == [] and "first_id" not in batches
        assert_conforms("ListBatchesResponse", batches)


def test_a_seed_beyond_int64_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=MODEL, messages=[FIRST], max_tokens=4, seed=2**63)
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "seed"


def test_a_token_id_prompt_is_refused_as_not_supported(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model=MODEL, prompt=[1, 2, 3], max_tokens=4)
    assert isinstance(refused.value.body, dict)
    assert "token-id prompts are not supported" in refused.value.body["message"]
