"""The real app (`api.app.create_app`) on fakeredis, with the real RQ worker and a FakeLlama on a thread.

The official `openai` client talks to the app in-process through httpx's ASGI transport; raw bodies are
checked with httpx where the exact wire format matters.
"""

import openai
import orjson
import pytest

from shared import names, rqcontract
from tests.fakes import MODEL, FakeLlama
from tests.harness import async_app
from tests.probes import DONE, data_payloads, error_of
from tests.spec import assert_conforms

REPLY = "Hello there, friend."
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}


# --- generation through the queue ------------------------------------------------------------------------


async def test_chat_without_streaming() -> None:
    async with async_app(FakeLlama(REPLY), workers=1) as app:
        reply = await app.http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 50})
        assert reply.status_code == 200
        assert_conforms("CreateChatCompletionResponse", reply.json())
        response = await app.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert response.choices[0].message.content == REPLY
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None and response.usage.completion_tokens == len(REPLY)
    assert response.usage.total_tokens == response.usage.prompt_tokens + len(REPLY)


async def test_chat_streaming_with_usage() -> None:
    async with async_app(FakeLlama(REPLY), workers=1) as app:
        stream = await app.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=5,
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY[:5]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


async def test_chat_stream_on_the_wire_conforms_and_ends_with_done() -> None:
    async with async_app(FakeLlama(REPLY), workers=1) as app:
        reply = await app.http.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    frames = data_payloads(reply.content)
    assert frames[-1] == DONE
    chunks = [orjson.loads(frame) for frame in frames[:-1]]
    for chunk in chunks:
        assert_conforms("CreateChatCompletionStreamResponse", chunk)
    assert "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks) == REPLY
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_completion_without_and_with_streaming() -> None:
    async with async_app(FakeLlama("upon a time"), workers=1) as app:
        response = await app.client.completions.create(model=MODEL, prompt="Once", max_tokens=4)
        stream = await app.client.completions.create(model=MODEL, prompt="Once", max_tokens=4, stream=True)
        chunks = [chunk async for chunk in stream]
    assert response.choices[0].text == "upon"
    assert response.choices[0].finish_reason == "length"
    assert response.usage is not None and response.usage.prompt_tokens == 5
    assert "".join(chunk.choices[0].text for chunk in chunks if chunk.choices) == "upon"


async def test_stop_sequence_ends_the_reply() -> None:
    async with async_app(FakeLlama(REPLY), workers=1) as app:
        response = await app.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], stop=[","]
        )
    assert response.choices[0].message.content == "Hello there"
    assert response.choices[0].finish_reason == "stop"


async def test_a_failure_mid_stream_is_an_error_event_not_a_hang() -> None:
    async with async_app(FakeLlama(REPLY, fail_after=3), workers=1) as app:
        reply = await app.http.post("/v1/chat/completions", json={**CHAT, "stream": True})
    frames = data_payloads(reply.content)
    assert DONE not in frames
    last = orjson.loads(frames[-1])
    assert last["error"]["code"] == "internal_error"
    assert "".join(orjson.loads(f)["choices"][0]["delta"].get("content", "") for f in frames[:-1]) == REPLY[:3]


async def test_a_failure_without_streaming_is_a_500_error_object() -> None:
    async with async_app(FakeLlama(REPLY, fail_after=3), workers=1) as app:
        reply = await app.http.post("/v1/chat/completions", json=CHAT)
    error = error_of(reply, 500, code="internal_error", param=None)
    assert "fake decode failure" not in error["message"]


async def test_a_prompt_over_the_context_is_400_context_length_exceeded() -> None:
    async with async_app(FakeLlama(n_ctx=64), workers=1) as app:
        body = {**CHAT, "messages": [{"role": "user", "content": "word " * 20}], "max_tokens": 10}
        plain = await app.http.post("/v1/chat/completions", json=body)
        streamed = await app.http.post("/v1/chat/completions", json={**body, "stream": True})
    error_of(plain, 400, code="context_length_exceeded", param="messages")
    error_of(streamed, 400, code="context_length_exceeded", param="messages")


# --- errors before anything is queued ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[]", None),
        (b'{"model": "fake-model"}', "messages"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": 1}]}', "messages[0].content"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": "x"}], "n": 17}', "n"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": "x"}], "store": true}', "store"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": "x"}], "temperature": "1"}', "temperature"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": "\\ud800"}]}', "messages[0].content"),
    ],
)
async def test_bad_requests_are_400_with_param_never_422(content: bytes, param: str | None) -> None:
    async with async_app(workers=0) as app:
        reply = await app.http.post(
            "/v1/chat/completions", content=content, headers={"content-type": "application/json"}
        )
        error = error_of(reply, 400, code=None, param=param)
        assert error["type"] == "invalid_request_error"
        assert app.redis.llen(rqcontract.queue_key(MODEL, names.INTERACTIVE)) == 0


async def test_bad_completion_request_is_400() -> None:
    async with async_app(workers=0) as app:
        reply = await app.http.post("/v1/completions", json={"model": MODEL, "prompt": ["a", "b"]})
    error_of(reply, 400, code=None, param="prompt")


async def test_unknown_model_is_404_model_not_found() -> None:
    async with async_app(FakeLlama(REPLY), workers=1) as app:
        reply = await app.http.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"})
        error_of(reply, 404, code="model_not_found", param="model")
        with pytest.raises(openai.NotFoundError):
            await app.client.completions.create(model="gpt-4o", prompt="x")


async def test_a_known_model_without_live_workers_is_503() -> None:
    async with async_app(workers=0) as app:
        reply = await app.http.post("/v1/chat/completions", json=CHAT)
    error_of(reply, 503, code="no_workers", param=None)


async def test_a_job_nobody_takes_ends_at_the_deadline_with_504_naming_the_job() -> None:
    async with async_app(workers=1, sync_timeout=0.5) as app:
        reply = await app.http.post("/v1/chat/completions", json=CHAT)
        error = error_of(reply, 504, code="timeout", param=None)
        (job_id,) = app.redis.lrange(rqcontract.queue_key(MODEL, names.INTERACTIVE), 0, -1)
        # The job stays queued: a worker may still run it, and its result can be polled by id.
        assert job_id.decode() in error["message"]
        assert app.redis.hget(names.job_key(job_id.decode()), "status") == b"queued"


async def test_unknown_routes_and_methods_are_error_objects() -> None:
    async with async_app(workers=0) as app:
        error_of(await app.http.get("/v1/nothing"), 404, code="not_found", param=None)
        error_of(await app.http.get("/v1/chat/completions"), 405, code="method_not_allowed", param=None)


# --- models and health -------------------------------------------------------------------------------------


async def test_models_lists_only_models_with_a_live_worker() -> None:
    async with async_app(FakeLlama(REPLY), workers=1) as app:
        listed = await app.client.models.list()
        assert [model.id for model in listed.data] == [MODEL]
        assert (await app.client.models.retrieve(MODEL)).id == MODEL
        app.redis.delete(names.model_workers_key(MODEL))
        assert (await app.http.get("/v1/models")).json() == {"object": "list", "data": []}
        error_of(await app.http.get(f"/v1/models/{MODEL}"), 404, code="model_not_found", param="model")


async def test_health() -> None:
    async with async_app(FakeLlama(REPLY), workers=1) as app:
        assert (await app.http.get("/health/live")).json() == {"status": "ok"}
        ready = await app.http.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert (body["status"], body["redis"]) == ("ready", "ok")
    assert body["models"][MODEL]["workers"] == 1
