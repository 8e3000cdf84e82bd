"""Tool calling through the queue, with the bundled model and the official client: sync, streamed, background
and batch. SmolLM2-135M's template knows no tools, so it gets the generic tool prompt; a required or named
call is enforced by a grammar, so its arguments always parse and follow the tool's schema."""

import json
from typing import Any

import httpx
import jsonschema
import openai
import orjson
import pytest

from tests.probes import chunks, data_payloads, wait_for
from tests.spec import assert_conforms
from tests.stack import MODEL, Stack

pytestmark = pytest.mark.integration

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The weather in a city now", "parameters": WEATHER_PARAMETERS},
}
TIME_PARAMETERS = {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 20}}, "required": ["zone"]}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "description": "The time now", "parameters": TIME_PARAMETERS},
}
SCHEMAS = {"get_weather": WEATHER_PARAMETERS, "get_time": TIME_PARAMETERS}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}


def call_request(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": QUESTION, "tools": [WEATHER], "temperature": 0, "max_tokens": 80, **fields}


def assert_valid_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The calls of a message: each an id, a function among the tools, arguments that follow its schema."""
    calls = message["tool_calls"]
    assert calls and message["content"] is None
    for call in calls:
        assert call["id"].startswith("call_") and call["type"] == "function"
        jsonschema.validate(json.loads(call["function"]["arguments"]), SCHEMAS[call["function"]["name"]])
    assert len({call["id"] for call in calls}) == len(calls)
    return calls


def test_a_named_call_is_made_and_conforms(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(**call_request(tool_choice=NAMED))
    body = raw.http_response.json()
    assert_conforms("CreateChatCompletionResponse", body)
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = assert_valid_calls(choice["message"])
    assert call["function"]["name"] == "get_weather"
    parsed = raw.parse().choices[0].message.tool_calls
    assert parsed is not None and parsed[0].function.arguments == call["function"]["arguments"]


def test_required_picks_among_the_tools_and_parallel_false_makes_one_call(client: openai.OpenAI) -> None:
    for parallel, most in ((False, 1), (True, 2)):
        request = call_request(tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=parallel)
        body = client.chat.completions.with_raw_response.create(**request).http_response.json()
        assert_conforms("CreateChatCompletionResponse", body)
        assert body["choices"][0]["finish_reason"] == "tool_calls"
        assert 1 <= len(assert_valid_calls(body["choices"][0]["message"])) <= most


def test_a_streamed_call_comes_as_openai_sends_it(stack: Stack, client: openai.OpenAI) -> None:
    """Index, id and name first, then the arguments in pieces that add up to the whole answer's."""
    whole = client.chat.completions.with_raw_response.create(**call_request(tool_choice=NAMED)).http_response.json()
    body = call_request(tool_choice=NAMED, stream=True, stream_options={"include_usage": True})
    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        parts = chunks(data_payloads(http.post("/v1/chat/completions", json=body).content))
    for chunk in parts:
        assert_conforms("CreateChatCompletionStreamResponse", chunk)
    deltas = [d for c in parts if c["choices"] for d in c["choices"][0]["delta"].get("tool_calls", [])]
    first, *rest = deltas
    assert first["index"] == 0 and first["id"].startswith("call_") and first["type"] == "function"
    assert first["function"] == {"name": "get_weather", "arguments": ""}
    assert len(rest) > 1 and all(set(d) == {"index", "function"} and set(d["function"]) == {"arguments"} for d in rest)
    arguments = "".join(d["function"]["arguments"] for d in rest)
    assert arguments == whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    finishes = [c["choices"][0]["finish_reason"] for c in parts if c["choices"]]
    assert finishes[-1] == "tool_calls" and set(finishes[:-1]) == {None}
    assert parts[-1]["usage"]["completion_tokens"] == whole["usage"]["completion_tokens"]


def test_the_client_reads_a_streamed_call(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(**call_request(tool_choice="required", stream=True))
    names, arguments = set(), ""
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            names.add(delta.function.name) if delta.function and delta.function.name else None
            arguments += delta.function.arguments or "" if delta.function else ""
    assert names == {"get_weather"}
    jsonschema.validate(json.loads(arguments), WEATHER_PARAMETERS)


def test_the_whole_loop_call_result_answer(client: openai.OpenAI) -> None:
    """Call, run the tool, send its result back: the history with the call and the result is accepted."""
    reply = client.chat.completions.create(**call_request(tool_choice="required"))
    message = reply.choices[0].message
    assert message.tool_calls
    history: list[Any] = [*QUESTION, message.model_dump(exclude_none=True)]
    for call in message.tool_calls:
        assert call.type == "function"
        city = json.loads(call.function.arguments)["city"]
        history.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"city": city, "sky": "clear"})})
    answer = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER], max_tokens=20)
    assert answer.choices[0].finish_reason in ("stop", "length", "tool_calls")
    final = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER], tool_choice="none")
    assert isinstance(final.choices[0].message.content, str) and final.choices[0].message.tool_calls is None


def test_auto_and_none_answer_in_text_or_calls_that_conform(client: openai.OpenAI) -> None:
    for choice in ("auto", "none"):
        body = client.chat.completions.with_raw_response.create(**call_request(tool_choice=choice)).http_response.json()
        assert_conforms("CreateChatCompletionResponse", body)
        message = body["choices"][0]["message"]
        if choice == "none" or body["choices"][0]["finish_reason"] != "tool_calls":
            assert isinstance(message["content"], str) and "tool_calls" not in message
        else:
            assert_valid_calls(message)


def test_a_background_job_with_tools_ends_with_its_calls(stack: Stack) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        body = call_request(tool_choice=NAMED)
        job_id = http.post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": body}).json()["id"]
        job = wait_for(lambda: (got := http.get(f"/v1/jobs/{job_id}").json())["status"] == "completed" and got, "job")
        (call,) = assert_valid_calls(job["response"]["choices"][0]["message"])
        events = http.get(f"/v1/jobs/{job_id}/events").text
    assert call["id"] in events and '"tc"' in events


def test_a_batch_line_with_tools_ends_with_its_calls(client: openai.OpenAI) -> None:
    line = {
        "custom_id": "weather",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": call_request(tool_choice=NAMED),
    }
    uploaded = client.files.create(file=("tools.jsonl", orjson.dumps(line) + b"\n"), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="1h")
    done = wait_for(lambda: (got := client.batches.retrieve(batch.id)).status == "completed" and got, "batch", 120)
    assert done.output_file_id is not None
    (output,) = [orjson.loads(text) for text in client.files.content(done.output_file_id).text.splitlines()]
    assert_conforms("CreateChatCompletionResponse", output["response"]["body"])
    assert_valid_calls(output["response"]["body"]["choices"][0]["message"])


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"messages": [{"role": "tool", "content": "42"}]}, "messages[0]"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name"),
    ],
)
def test_tools_that_cannot_work_are_clear_errors(client: openai.OpenAI, fields: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**call_request(**fields))
    assert caught.value.param == param


def test_each_choice_makes_its_own_calls(client: openai.OpenAI) -> None:
    body = client.chat.completions.with_raw_response.create(**call_request(tool_choice=NAMED, n=2)).http_response
    choices = body.json()["choices"]
    assert [choice["index"] for choice in choices] == [0, 1]
    calls = [assert_valid_calls(choice["message"])[0] for choice in choices]
    assert calls[0]["id"] != calls[1]["id"]
    assert calls[0]["function"] == calls[1]["function"]  # greedy: the same call twice
