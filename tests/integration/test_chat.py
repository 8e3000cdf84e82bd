"""POST /v1/chat/completions end to end: the official client, the API, Redis, a real worker and model.

Every request that compares two outputs carries a `seed`: a seeded request is reproducible, so the
comparisons below have one fixed outcome on a given build, not a likely one.
"""

import base64
import json
import zlib
from typing import Any

import jsonschema
import openai
import pytest
from redis import Redis

from shared import names, rqcontract
from shared.payload import JOB_DESCRIPTION, JOB_FUNCTION
from tests.probes import chunks, data_lines, job_of, poll
from tests.spec import assert_conforms
from tests.stack import MODEL, Stack

pytestmark = pytest.mark.integration

STORY = [{"role": "user", "content": "Write a short story about a dog."}]
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def ask(client: openai.OpenAI, **fields: Any) -> Any:
    fields.setdefault("messages", STORY)
    fields.setdefault("max_tokens", 24)
    return client.chat.completions.create(model=MODEL, **fields)


def text(client: openai.OpenAI, **fields: Any) -> str:
    content = ask(client, **fields).choices[0].message.content
    assert isinstance(content, str)
    return content


def streamed(client: openai.OpenAI, **fields: Any) -> tuple[str, list[Any]]:
    """The concatenated content of a streamed reply and its chunks, read through the client."""
    parts = list(ask(client, stream=True, **fields))
    content = "".join(c.choices[0].delta.content or "" for c in parts if c.choices)
    return content, parts


def test_reply_conforms_to_the_spec_with_consistent_usage(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=STORY, max_tokens=12, seed=1)
    body = raw.http_response.json()
    assert_conforms("CreateChatCompletionResponse", body)
    reply = raw.parse()
    assert reply.object == "chat.completion" and reply.model == MODEL and reply.id.startswith("chatcmpl-")
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 12
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_raw_stream_conforms_chunk_by_chunk_and_ends_with_done(stack: Stack, client: openai.OpenAI) -> None:
    request = {"model": MODEL, "messages": STORY, "max_tokens": 16, "seed": 3}
    whole = client.chat.completions.create(**request)
    body = {**request, "stream": True, "stream_options": {"include_usage": True}}
    parts = chunks(data_lines(stack.base_url, "/v1/chat/completions", body))
    for chunk in parts:
        assert_conforms("CreateChatCompletionStreamResponse", chunk)
    assert len({chunk["id"] for chunk in parts}) == 1 and parts[0]["id"].startswith("chatcmpl-")
    *with_choices, usage_chunk = parts
    assert usage_chunk["choices"] == [] and all(c["usage"] is None for c in with_choices)
    assert with_choices[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c["choices"][0]["finish_reason"] for c in with_choices]
    assert finishes[-1] == "length" and set(finishes[:-1]) == {None}
    pieces = [c["choices"][0]["delta"].get("content") or "" for c in with_choices]
    usage = usage_chunk["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == 16
    # One chunk per token, unless a character spans tokens and waits for its last byte.
    assert 1 <= sum(1 for piece in pieces if piece) <= usage["completion_tokens"]
    assert "".join(pieces) == whole.choices[0].message.content
    assert whole.usage is not None and usage == whole.usage.model_dump(exclude_none=True)


def test_stream_through_the_client_with_and_without_usage(client: openai.OpenAI) -> None:
    content, parts = streamed(client, max_tokens=8, seed=5, stream_options={"include_usage": True})
    assert parts[-1].choices == [] and parts[-1].usage is not None
    assert parts[-1].usage.completion_tokens == 8
    assert parts[-2].choices[0].finish_reason == "length"
    assert content == text(client, max_tokens=8, seed=5)
    _, plain = streamed(client, max_tokens=8, seed=5)
    assert all(chunk.usage is None for chunk in plain) and plain[-1].choices[0].finish_reason == "length"


def test_max_tokens_and_max_completion_tokens_cap_the_completion(client: openai.OpenAI) -> None:
    capped = ask(client, max_tokens=5, seed=2)
    assert capped.usage.completion_tokens == 5 and capped.choices[0].finish_reason == "length"
    newer = ask(client, max_tokens=20, max_completion_tokens=3, seed=2)
    assert newer.usage.completion_tokens == 3 and newer.choices[0].finish_reason == "length"
    assert capped.choices[0].message.content.startswith(newer.choices[0].message.content)


def test_end_of_generation_finishes_with_stop(client: openai.OpenAI) -> None:
    reply = ask(client, messages=[{"role": "user", "content": "Say hi"}], max_tokens=200, seed=4, temperature=0)
    assert reply.choices[0].finish_reason == "stop"
    assert 0 < reply.usage.completion_tokens < 200


def test_stop_sequence_cuts_the_text_streamed_or_not(client: openai.OpenAI) -> None:
    full = text(client, max_tokens=40, seed=6)
    words = full.split()
    assert len(words) > 4, full
    stop = " " + words[3]
    expected = full[: full.index(stop)]
    reply = ask(client, max_tokens=40, seed=6, stop=[stop, "\u2603never"])
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == expected
    content, parts = streamed(client, max_tokens=40, seed=6, stop=stop)
    assert content == expected
    assert parts[-1].choices[0].finish_reason == "stop"


def test_seed_makes_sampling_repeatable(client: openai.OpenAI) -> None:
    first = text(client, seed=7, temperature=1.0)
    text(client, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=4)
    assert text(client, seed=7, temperature=1.0) == first
    others = {text(client, seed=seed, temperature=1.0) for seed in (8, 9)}
    assert others != {first}, "other seeds sample other text"
    greedy = text(client, seed=7, temperature=0)
    assert text(client, seed=11, temperature=0) == greedy


def test_top_p_zero_keeps_only_the_most_likely_token(client: openai.OpenAI) -> None:
    greedy = text(client, seed=1, temperature=0)
    assert {text(client, seed=seed, temperature=1.0, top_p=0) for seed in (1, 2)} == {greedy}


def test_penalties_change_the_text(client: openai.OpenAI) -> None:
    plain = text(client, seed=1, temperature=0, max_tokens=40)
    assert text(client, seed=1, temperature=0, max_tokens=40, frequency_penalty=2) != plain
    assert text(client, seed=1, temperature=0, max_tokens=40, presence_penalty=2) != plain


def test_message_roles_and_text_parts(client: openai.OpenAI) -> None:
    plain = ask(client, seed=1, temperature=0)
    parts = [{"type": "text", "text": "Write a short story "}, {"type": "text", "text": "about a dog."}]
    as_parts = ask(client, seed=1, temperature=0, messages=[{"role": "user", "content": parts}])
    assert as_parts.choices[0].message.content == plain.choices[0].message.content
    assert as_parts.usage.prompt_tokens == plain.usage.prompt_tokens
    system = [{"role": "system", "content": "You only answer in French."}, *STORY]
    french = ask(client, seed=1, temperature=0, messages=system)
    assert french.choices[0].message.content != plain.choices[0].message.content
    developer = ask(client, seed=1, temperature=0, messages=[{**system[0], "role": "developer"}, *STORY])
    assert developer.choices[0].message.content == french.choices[0].message.content
    history = [*STORY, {"role": "assistant", "content": "Rex ran home."}, {"role": "user", "content": "Again."}]
    longer = ask(client, seed=1, temperature=0, messages=history, user="user-1234")
    assert longer.usage.prompt_tokens > plain.usage.prompt_tokens


def test_json_object_format_returns_parseable_json(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Return a JSON object with the keys name and age of a person."}]
    reply = ask(client, messages=messages, max_tokens=120, seed=1, response_format={"type": "json_object"})
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_json_schema_format_is_enforced_by_the_grammar(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Describe a person."}]
    unconstrained = text(client, messages=messages, max_tokens=60, seed=1, temperature=0)
    with pytest.raises(json.JSONDecodeError):
        json.loads(unconstrained)
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    reply = ask(client, messages=messages, max_tokens=60, seed=1, temperature=0, response_format=fmt)
    assert reply.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(reply.choices[0].message.content), PERSON)


def test_a_schema_without_a_grammar_is_a_400(client: openai.OpenAI) -> None:
    broken = {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "broken", "schema": broken}}
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, max_tokens=4, response_format=fmt)
    assert caught.value.param == "response_format"
    assert caught.value.type == "invalid_request_error"


def test_n_up_to_the_slots_is_served_and_above_them_refused(client: openai.OpenAI) -> None:
    assert ask(client, n=1, max_tokens=2).choices[0].index == 0
    assert [choice.index for choice in ask(client, n=2, max_tokens=2).choices] == [0, 1]
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, n=16, max_tokens=2)
    assert caught.value.param == "n" and "LLAMAQ_SLOTS" in caught.value.message


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
        ({"store": True}, "store"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"extra_body": {"top_k": 5}}, "top_k"),
    ],
)
def test_unsupported_fields_are_refused_by_name(client: openai.OpenAI, fields: dict[str, Any], named: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, max_tokens=2, **fields)
    assert caught.value.status_code == 400
    assert caught.value.param == named and named in caught.value.message


def test_job_record_is_json_with_a_fixed_description(stack: Stack, client: openai.OpenAI) -> None:
    marker = "Marker-7f3a: describe a lighthouse."
    reply = ask(client, messages=[{"role": "user", "content": marker}], max_tokens=4, seed=1)
    with Redis.from_url(stack.redis_url) as redis:
        record = redis.hgetall(rqcontract.job_key(job_of(reply.id)))
        # The worker stores RQ's result after it sent the reply's terminal event: give it a moment.
        results = poll(lambda: redis.xrange(f"rq:results:{job_of(reply.id)}"), timeout=10)
    assert record[b"description"] == JOB_DESCRIPTION.encode()
    assert record[b"origin"] == names.queue_name(MODEL, names.INTERACTIVE).encode()
    function, instance, args, kwargs = json.loads(zlib.decompress(record[b"data"]))
    assert (function, instance, kwargs) == (JOB_FUNCTION, None, {})
    assert args[0]["messages"] == [{"role": "user", "content": marker}]
    assert all(marker.encode() not in value for key, value in record.items() if key != b"data")
    # RQ keeps the return value serialised with the job's serializer (JSON, base64-wrapped).
    assert results, "the worker stored a result"
    summary = json.loads(base64.b64decode(results[-1][1][b"return_value"]))
    assert summary["job"] == job_of(reply.id) and summary["outcome"] == "completed"
