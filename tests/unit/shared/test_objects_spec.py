"""shared/objects.py and the SSE chunks of api/streaming.py conform to the official OpenAI spec."""

from typing import Any

import orjson
import pytest

from api.streaming import END_OF_STREAM, ChunkWriter, sse
from shared import objects
from shared.payload import response_id
from tests.fakes import chat_job, completion_job
from tests.probes import data_payloads
from tests.spec import assert_conforms, errors_against

USAGE = objects.usage(12, 3)
CHAT = "CreateChatCompletionResponse"
CHAT_CHUNK = "CreateChatCompletionStreamResponse"
TEXT = "CreateCompletionResponse"
TEXT_CHUNK = "CreateCompletionStreamResponse"


def frames(body: bytes) -> list[Any]:
    """The `data:` payloads of an SSE body, `[DONE]` kept as a string."""
    return [data if data == "[DONE]" else orjson.loads(data) for data in data_payloads(body)]


def test_usage_adds_up() -> None:
    assert USAGE == {
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


@pytest.mark.parametrize("finish_reason", ["stop", "length"])
def test_chat_completion_conforms(finish_reason: str) -> None:
    response = objects.chat_completion("chatcmpl-1", "m", 1700000000, [objects.Choice("Hello", finish_reason)], USAGE)
    assert_conforms(CHAT, response)
    assert response["object"] == "chat.completion"
    assert response["choices"][0]["message"] == {"role": "assistant", "content": "Hello", "refusal": None}


@pytest.mark.parametrize("finish_reason", ["stop", "length"])
def test_text_completion_conforms(finish_reason: str) -> None:
    response = objects.text_completion(
        "cmpl-1", "m", 1700000000, [objects.Choice("", finish_reason)], objects.usage(1, 0)
    )
    assert_conforms(TEXT, response)
    assert response["object"] == "text_completion"


def test_every_kind_of_chat_chunk_conforms() -> None:
    chunks = [
        objects.chat_chunk("c", "m", 1, {"role": "assistant", "content": ""}),
        objects.chat_chunk("c", "m", 1, {"content": "tok"}, with_usage_field=True),
        objects.chat_chunk("c", "m", 1, {}, "stop"),
        objects.chat_chunk("c", "m", 1, {}, "length", with_usage_field=True),
        objects.chat_chunk("c", "m", 1, None, usage_=USAGE, with_usage_field=True),
    ]
    for chunk in chunks:
        assert_conforms(CHAT_CHUNK, chunk)
    assert "usage" not in chunks[0]
    assert chunks[1]["usage"] is None
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == USAGE


def test_every_kind_of_text_chunk_conforms() -> None:
    chunks = [
        objects.text_chunk("c", "m", 1, "tok"),
        objects.text_chunk("c", "m", 1, "tok", with_usage_field=True),
        objects.text_chunk("c", "m", 1, "", "length"),
        objects.text_chunk("c", "m", 1, None, usage_=USAGE, with_usage_field=True),
    ]
    for chunk in chunks:
        assert_conforms(TEXT_CHUNK, chunk)
    assert chunks[-1]["choices"] == []


def test_the_validator_catches_broken_objects() -> None:
    good = objects.chat_completion("chatcmpl-1", "m", 1, [objects.Choice("Hello", "stop")], USAGE)
    assert errors_against(CHAT, {key: value for key, value in good.items() if key != "created"})
    assert errors_against(CHAT, {**good, "choices": [{**good["choices"][0], "finish_reason": "done"}]})
    assert errors_against(CHAT_CHUNK, objects.chat_chunk("c", "m", 1, {"content": 5}))


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_whole_chat_stream_conforms_and_ends_with_done(include_usage: bool) -> None:
    job = chat_job()
    writer = ChunkWriter(job, include_usage)
    final = objects.chat_completion(
        response_id(job.id, "chat"), job.model, job.created, [objects.Choice("ab", "length")], USAGE
    )
    body = writer.opening() + writer.token("a") + writer.token("b") + writer.closing(final)
    sent = frames(body)
    assert sent[-1] == "[DONE]"
    chunks = sent[:-1]
    for chunk in chunks:
        assert_conforms(CHAT_CHUNK, chunk)
        assert (chunk["id"], chunk["model"], chunk["created"]) == (final["id"], job.model, job.created)
    with_choices = [chunk for chunk in chunks if chunk["choices"]]
    assert with_choices[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in with_choices) == "ab"
    assert [c["choices"][0]["finish_reason"] for c in with_choices] == [None, None, None, "length"]
    if include_usage:
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"] == USAGE
        assert all(chunk["usage"] is None for chunk in chunks[:-1])
    else:
        assert all("usage" not in chunk for chunk in chunks)


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_whole_text_stream_conforms_and_ends_with_done(include_usage: bool) -> None:
    job = completion_job()
    writer = ChunkWriter(job, include_usage)
    final = objects.text_completion(
        response_id(job.id, "completion"), job.model, job.created, [objects.Choice("ab", "stop")], USAGE
    )
    body = writer.opening() + writer.token("a") + writer.token("b") + writer.closing(final)
    sent = frames(body)
    assert sent[-1] == "[DONE]"
    for chunk in sent[:-1]:
        assert_conforms(TEXT_CHUNK, chunk)
        assert chunk["id"] == final["id"]
    texts = [chunk["choices"][0]["text"] for chunk in sent[:-1] if chunk["choices"]]
    assert "".join(texts) == "ab"
    assert (sent[-2].get("usage") == USAGE) is include_usage


def test_an_error_in_the_stream_is_an_openai_error_object() -> None:
    error = {"message": "gone", "type": "server_error", "param": None, "code": "worker_lost"}
    assert frames(ChunkWriter.error(error)) == [{"error": error}]


def test_sse_frames_carry_an_id_when_given() -> None:
    assert sse({"a": 1}, 7) == b'id: 7\ndata: {"a":1}\n\n'
    assert END_OF_STREAM == b"data: [DONE]\n\n"
