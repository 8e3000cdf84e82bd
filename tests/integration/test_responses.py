"""The Responses API with the official client against a real Redis and worker: answered, streamed, continued
with `previous_response_id`, in the background (polled, its stream resumed after any event, from another API
replica and after an API restart), cancelled, deleted; function tools and JSON output. Every object and every
event is checked against the official schemas."""

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from shared.redis_server import RedisServer
from tests.probes import data_payloads, wait_for
from tests.spec import assert_conforms
from tests.stack import MODEL, Stack, running_stack

pytestmark = pytest.mark.integration

ENDED = {"completed", "incomplete", "failed", "cancelled"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}}, "required": ["city"]},
}


def raw(client: openai.OpenAI, **fields: Any) -> dict[str, Any]:
    body = client.responses.with_raw_response.create(model=MODEL, **fields).http_response.json()
    assert_conforms("Response", body)
    return body


def events_of(base_url: str, response_id: str, after: int = -1) -> list[dict[str, Any]]:
    """Every event of a response's stream numbered above `after`, through the resumable GET."""
    params = {"stream": "true", "starting_after": str(after)}
    reply = httpx.get(f"{base_url}/v1/responses/{response_id}", params=params, timeout=120)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
    made = [json.loads(payload) for payload in data_payloads(reply.content)]
    for event in made:
        assert_conforms("ResponseStreamEvent", event)
    return made


def first_events(count: int, method: str, url: str, **request: Any) -> list[dict[str, Any]]:
    """The first `count` events of a stream, read live; then the connection is dropped."""
    seen: list[dict[str, Any]] = []
    with httpx.stream(method, url, timeout=60, **request) as live:
        for line in live.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line.removeprefix("data: ")))
                if len(seen) == count:
                    break
    return seen


def finished(client: openai.OpenAI, response_id: str, timeout: float = 120) -> Any:
    return wait_for(
        lambda: (got := client.responses.retrieve(response_id)).status in ENDED and got, "response ended", timeout
    )


def test_a_text_input_is_answered_and_conforms(client: openai.OpenAI) -> None:
    body = raw(client, input="Say hello.", max_output_tokens=16, temperature=0, metadata={"team": "a"})
    assert body["id"].startswith("resp_") and body["object"] == "response"
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    (message,) = body["output"]
    assert message["type"] == "message" and message["role"] == "assistant" and message["content"][0]["text"]
    assert body["usage"]["output_tokens"] == 16 and body["metadata"] == {"team": "a"}
    again = client.responses.retrieve(body["id"])
    assert again.output_text == message["content"][0]["text"] and again.status == "incomplete"


def test_message_input_with_instructions(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, instructions="Answer in one word.", max_output_tokens=200, temperature=0,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Name a colour."}]}],
    )  # fmt: skip
    assert response.status == "completed" and response.output_text and response.instructions == "Answer in one word."
    items = client.responses.input_items.list(response.id)
    assert [item.type for item in items.data] == ["message"]


def test_previous_response_id_continues_the_conversation_from_the_cache(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="My name is Ada.", max_output_tokens=24, temperature=0)
    second = client.responses.create(
        model=MODEL, input="What is my name?", previous_response_id=first.id, max_output_tokens=24, temperature=0
    )
    assert second.previous_response_id == first.id
    assert first.usage is not None and second.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    # The first turn's prompt is the second's prefix: the slot that ran it still holds it.
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens - 1
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="Hi", previous_response_id="resp_nope")
    assert caught.value.param == "previous_response_id"


def test_a_stream_sends_every_event_in_order_and_ends_as_the_stored_response(stack: Stack) -> None:
    body = {"model": MODEL, "input": "Say hi.", "max_output_tokens": 200, "temperature": 0, "stream": True}
    reply = httpx.post(f"{stack.base_url}/v1/responses", json=body, timeout=60)
    made = [json.loads(payload) for payload in data_payloads(reply.content)]
    for event in made:
        assert_conforms("ResponseStreamEvent", event)
    assert [event["sequence_number"] for event in made] == list(range(len(made)))
    kinds = [event["type"] for event in made]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    text = "".join(event["delta"] for event in made if event["type"] == "response.output_text.delta")
    final = made[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == text
    stored = httpx.get(f"{stack.base_url}/v1/responses/{final['id']}", timeout=10).json()
    assert stored == final
    assert events_of(stack.base_url, final["id"]) == made  # replayed: the same stream


def test_the_official_stream_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="Say hi.", max_output_tokens=200, temperature=0) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "".join(deltas)


def test_background_polled_and_its_stream_resumed_after_any_event(client: openai.OpenAI, stack: Stack) -> None:
    started = client.responses.create(model=MODEL, input="Write a poem.", background=True, max_output_tokens=40)
    assert started.status == "queued" and started.background
    done = finished(client, started.id)
    assert done.status in ("completed", "incomplete") and done.output_text
    whole = events_of(stack.base_url, started.id)
    kinds = [event["type"] for event in whole]
    assert kinds[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert whole[-1]["response"] == client.responses.with_raw_response.retrieve(started.id).http_response.json()
    for after in (0, 2, 5, len(whole) // 2, len(whole) - 2):
        assert events_of(stack.base_url, started.id, after) == whole[after + 1 :]


def test_a_background_stream_resumes_on_another_replica_and_after_an_api_restart(
    fresh_redis_url: str, logs_dir: Path
) -> None:
    body = {"model": MODEL, "input": "Count from 1 to 100.", "background": True, "max_output_tokens": 150,
            "temperature": 0}  # fmt: skip
    with running_stack(fresh_redis_url, logs_dir) as stack:
        created = httpx.post(f"{stack.base_url}/v1/responses", json=body, timeout=30).json()
        # Read the first events live, then drop the connection mid-stream.
        url = f"{stack.base_url}/v1/responses/{created['id']}"
        seen = first_events(12, "GET", url, params={"stream": "true"})
        with running_stack(fresh_redis_url, logs_dir / "replica", workers=0) as replica:
            rest = events_of(replica.base_url, created["id"], seen[-1]["sequence_number"])
        assert [e["sequence_number"] for e in seen + rest] == list(range(len(seen) + len(rest)))
        assert rest[-1]["type"] in ("response.completed", "response.incomplete")
        assert stack.api is not None
        stack.api.terminate()
        stack.api.wait(15)
        stack.api = stack.spawn("api", "api-restarted.log")
        stack.wait_workers(1)
        assert events_of(stack.base_url, created["id"], 11) == rest


def test_cancel_is_for_background_responses_and_idempotent(client: openai.OpenAI) -> None:
    running = client.responses.create(
        model=MODEL, input="Count from 1 to 1000.", background=True, max_output_tokens=1500, temperature=0
    )
    wait_for(lambda: client.responses.retrieve(running.id).status == "in_progress", "response running")
    cancelled = client.responses.cancel(running.id)
    assert cancelled.status in ("in_progress", "cancelled")
    assert finished(client, running.id).status == "cancelled"
    assert client.responses.cancel(running.id).status == "cancelled"
    answered = client.responses.create(model=MODEL, input="Hi", max_output_tokens=4)
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(answered.id)


def test_delete_and_unstored_responses_are_gone(client: openai.OpenAI) -> None:
    kept = client.responses.create(model=MODEL, input="Hi", max_output_tokens=4)
    client.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept.id)
    unstored = client.responses.create(model=MODEL, input="Hi", max_output_tokens=4, store=False)
    assert unstored.store is False and unstored.output_text
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL, input="Hi", background=True, store=False)


def test_a_function_call_and_its_output_as_the_next_input(client: openai.OpenAI, stack: Stack) -> None:
    body = raw(client, input="Weather in Paris?", tools=[WEATHER], tool_choice="required", max_output_tokens=60,
               temperature=0)  # fmt: skip
    assert body["status"] == "completed"
    (call,) = [item for item in body["output"] if item["type"] == "function_call"]
    assert call["name"] == "get_weather" and isinstance(json.loads(call["arguments"])["city"], str)
    streamed = httpx.post(
        f"{stack.base_url}/v1/responses", timeout=60,
        json={"model": MODEL, "input": "Weather in Paris?", "tools": [WEATHER], "tool_choice": "required",
              "max_output_tokens": 60, "temperature": 0, "stream": True},
    )  # fmt: skip
    made = [json.loads(payload) for payload in data_payloads(streamed.content)]
    deltas = "".join(e["delta"] for e in made if e["type"] == "response.function_call_arguments.delta")
    (done,) = [e for e in made if e["type"] == "response.function_call_arguments.done"]
    assert deltas == done["arguments"] == call["arguments"]
    answer = client.responses.create(
        model=MODEL, tools=[WEATHER], previous_response_id=body["id"], max_output_tokens=30,
        input=[{"type": "function_call_output", "call_id": call["call_id"], "output": '{"sky": "clear"}'}],
    )  # fmt: skip
    assert answer.status in ("completed", "incomplete")
    items = client.responses.input_items.list(answer.id, order="asc")
    assert [item.type for item in items.data] == ["function_call_output"]


def test_json_schema_output(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string", "maxLength": 20}}, "required": ["colour"]}
    response = client.responses.create(
        model=MODEL, input="Name a colour as JSON.", max_output_tokens=60, temperature=0,
        text={"format": {"type": "json_schema", "name": "colour", "schema": schema}},
    )  # fmt: skip
    assert isinstance(json.loads(response.output_text)["colour"], str)


def test_bad_requests_are_clear(client: openai.OpenAI) -> None:
    for fields, param in (
        ({"input": []}, "input"),
        ({"input": "Hi", "tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"input": "Hi", "reasoning": {"effort": "high"}}, "reasoning"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(model=MODEL, **fields)
        assert caught.value.param is not None and caught.value.param.startswith(param), caught.value


def test_a_background_response_and_its_stream_survive_a_redis_restart(tmp_path: Path) -> None:
    """With the append-only file on, the response, its job and its event log are all still there."""
    server = RedisServer(tmp_path / "redis", persist=True)
    server.start()
    try:
        with running_stack(server.url, tmp_path / "logs") as stack:
            client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=60)
            made = client.responses.create(model=MODEL, input="Write a poem.", background=True, max_output_tokens=30)
            before = finished(client, made.id).model_dump()
            events = events_of(stack.base_url, made.id)
            server.stop()
            server.start()
            stack.wait_workers(1)
            assert client.responses.retrieve(made.id).model_dump() == before
            assert events_of(stack.base_url, made.id, 3) == events[4:]
    finally:
        server.stop()


def test_a_background_stream_left_early_does_not_stop_the_response(stack: Stack, client: openai.OpenAI) -> None:
    body = {"model": MODEL, "input": "Count from 1 to 50.", "background": True, "stream": True,
            "max_output_tokens": 80, "temperature": 0}  # fmt: skip
    seen = first_events(6, "POST", f"{stack.base_url}/v1/responses", json=body)
    assert [event["type"] for event in seen[:2]] == ["response.created", "response.queued"]
    done = finished(client, seen[0]["response"]["id"])
    assert done.status in ("completed", "incomplete") and done.output_text
