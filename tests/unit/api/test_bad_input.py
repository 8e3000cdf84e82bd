"""Bad input: every case is a 4xx OpenAI error object, nothing is enqueued, and the server stays healthy."""

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fakes import MODEL
from tests.harness import AsyncApp, async_app, drain

CHAT_PATH, COMPLETIONS_PATH, JOBS_PATH = "/v1/chat/completions", "/v1/completions", "/v1/jobs"
EMBEDDINGS_PATH = "/v1/embeddings"
USER = {"role": "user", "content": "hi"}
CHAT: dict[str, Any] = {"model": MODEL, "messages": [USER]}
N_CTX, MAX_TOKENS_CAP, MAX_MESSAGES, MAX_BODY = 512, 256, 8, 300_000


@dataclass
class Case:
    body: bytes | dict[str, Any] | list[Any]
    status: int = 400
    code: str | None = None
    param: str | None = None
    path: str = CHAT_PATH
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False


def chat(**fields: Any) -> dict[str, Any]:
    return {**CHAT, **fields}


def job(**body: Any) -> dict[str, Any]:
    return {"endpoint": CHAT_PATH, "body": chat(**body)}


def embed(input: Any = "hi", **fields: Any) -> Case:
    """An embeddings request whose `param` is `input` unless a field is named."""
    param = next(iter(fields), "input")
    return Case({"model": MODEL, "input": input, **fields}, path=EMBEDDINGS_PATH, param=param)


def raw(text: str) -> bytes:
    """`text` as bytes, with `{MODEL}` standing for the served model's id."""
    return text.replace("{MODEL}", MODEL).encode()


CASES: dict[str, Case] = {
    "malformed json": Case(raw('{"model": "{MODEL}", "messages": [')),
    "trailing garbage": Case(raw('{"model": "{MODEL}", "messages": []} x')),
    "empty body": Case(b""),
    "body is an array": Case([CHAT]),
    "body is a string": Case(raw('"hello"')),
    "body is null": Case(raw("null")),
    "missing model": Case({"messages": [USER]}, param="model"),
    "missing messages": Case({"model": MODEL}, param="messages"),
    "model is a number": Case(chat(model=123), param="model"),
    "model is empty": Case(chat(model=""), param="model"),
    "model is huge": Case(chat(model="m" * 3000), param="model"),
    "messages is a string": Case(chat(messages="hi"), param="messages"),
    "messages is empty": Case(chat(messages=[]), param="messages"),
    "message without content": Case(chat(messages=[{"role": "user"}]), param="messages[0].content"),
    "unknown role": Case(chat(messages=[{"role": "wizard", "content": "hi"}]), param="messages[0].role"),
    "role is a number": Case(chat(messages=[{"role": 1, "content": "hi"}]), param="messages[0].role"),
    "content is a number": Case(chat(messages=[{"role": "user", "content": 42}]), param="messages[0].content"),
    "content part of unknown type": Case(
        chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
    ),
    "max_tokens is a string": Case(chat(max_tokens="10"), param="max_tokens"),
    "max_tokens is negative": Case(chat(max_tokens=-1), param="max_tokens"),
    "max_tokens is huge": Case(chat(max_tokens=10**30), param="max_tokens"),
    "max_tokens above the cap": Case(chat(max_tokens=MAX_TOKENS_CAP + 1), param="max_tokens"),
    "temperature out of range": Case(chat(temperature=1e308), param="temperature"),
    "temperature NaN": Case(
        raw('{"model": "{MODEL}", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}')
    ),
    "top_p Infinity": Case(
        raw('{"model": "{MODEL}", "messages": [{"role": "user", "content": "hi"}], "top_p": Infinity}')
    ),
    "seed beyond 64 bits": Case(chat(seed=2**70), param="seed"),
    "n above the slots": Case(chat(n=16), param="n"),
    "five stop sequences": Case(chat(stop=["a", "b", "c", "d", "e"]), param="stop"),
    "stream is a string": Case(chat(stream="yes"), param="stream"),
    "unknown field": Case(chat(frobnicate=True), param="frobnicate"),
    "unsupported field": Case(chat(store=True), param="store"),
    "deeply nested JSON": Case(raw('{"model": "{MODEL}", "messages": ' + "[" * 50_000 + "]" * 50_000 + "}")),
    "deeply nested content": Case(
        raw('{"model": "{MODEL}", "messages": [{"role": "user", "content": ' + "[" * 300 + "]" * 300 + "}]}")
    ),
    "invalid UTF-8 bytes": Case(
        raw('{"model": "{MODEL}", "messages": [{"role": "user", "content": "') + b'\xff\xfe\xc3("}]}'
    ),
    "lone surrogate": Case(raw('{"model": "{MODEL}", "messages": [{"role": "user", "content": "a\\ud800b"}]}')),
    "raw control character in a string": Case(
        raw('{"model": "{MODEL}", "messages": [{"role": "user", "content": "a\x01b"}]}')
    ),
    "too many messages": Case(chat(messages=[USER] * (MAX_MESSAGES + 1)), param="messages"),
    "prompt longer than the context": Case(
        chat(messages=[{"role": "user", "content": "word " * N_CTX * 2}]), code="context_length_exceeded"
    ),
    "prompt plus max_tokens beyond the context": Case(
        chat(messages=[{"role": "user", "content": "x" * (N_CTX * 6)}], max_tokens=MAX_TOKENS_CAP),
        code="context_length_exceeded",
    ),
    "unknown model": Case(chat(model="gpt-17"), status=404, code="model_not_found", param="model"),
    "oversized body": Case(chat(messages=[{"role": "user", "content": "x" * MAX_BODY}]), status=413),
    "oversized chunked body": Case(
        chat(messages=[{"role": "user", "content": "x" * MAX_BODY}]), status=413, chunked=True
    ),
    "idempotency key too long": Case(chat(), headers={"Idempotency-Key": "k" * 300}),
    "completion: two prompts": Case({"model": MODEL, "prompt": ["a", "b"]}, path=COMPLETIONS_PATH, param="prompt"),
    "completion: prompt is a number": Case({"model": MODEL, "prompt": 7}, path=COMPLETIONS_PATH, param="prompt"),
    "completion: echo": Case({"model": MODEL, "prompt": "a", "echo": True}, path=COMPLETIONS_PATH, param="echo"),
    "job: unknown endpoint": Case({"endpoint": "/v1/responses", "body": CHAT}, path=JOBS_PATH, param="endpoint"),
    "embeddings: no input": Case({"model": MODEL}, path=EMBEDDINGS_PATH, param="input"),
    "embeddings: empty string": embed(""),
    "embeddings: empty list": embed([]),
    "embeddings: an empty string in the list": embed(["a", ""]),
    "embeddings: more than 2048 inputs": embed(["a"] * 2049),
    "embeddings: strings and token ids mixed": embed(["a", 1]),
    "embeddings: negative token id": embed([5, -1]),
    "embeddings: a bool as token id": embed([True]),
    "embeddings: an empty token array": embed([[1], []]),
    "embeddings: input is an object": embed({"text": "a"}),
    "embeddings: unknown encoding_format": embed(encoding_format="hex"),
    "embeddings: dimensions zero": embed(dimensions=0),
    "embeddings: unknown field": embed(truncate=True),
    "embeddings: to a chat model": Case(
        {"model": MODEL, "input": "hi"}, path=EMBEDDINGS_PATH, param="model", code="model_not_supported"
    ),
    "job: embeddings to a chat model": Case(
        {"endpoint": EMBEDDINGS_PATH, "body": {"model": MODEL, "input": "hi"}}, path=JOBS_PATH, param="body.model"
    ),
    "job: bad embeddings input": Case(
        {"endpoint": EMBEDDINGS_PATH, "body": {"model": MODEL, "input": []}}, path=JOBS_PATH, param="body.input"
    ),
    "job: body is a list": Case({"endpoint": CHAT_PATH, "body": [CHAT]}, path=JOBS_PATH, param="body"),
    "job: streamed": Case(job(stream=True), path=JOBS_PATH, param="body.stream"),
    "job: bad max_tokens": Case(job(max_tokens=0), path=JOBS_PATH, param="body.max_tokens"),
}


async def _send(fake: AsyncApp, case: Case) -> Any:
    content = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    headers = {"Content-Type": "application/json", **case.headers}
    if case.chunked:

        async def pieces() -> Any:
            for start in range(0, len(content), 1000):
                yield content[start : start + 1000]

        return await fake.http.post(case.path, content=pieces(), headers=headers)
    return await fake.http.post(case.path, content=content, headers=headers)


@pytest.mark.parametrize("name", CASES)
async def test_bad_input_is_a_4xx_error_and_enqueues_nothing(name: str) -> None:
    case = CASES[name]
    settings = dict(max_tokens_cap=MAX_TOKENS_CAP, max_messages=MAX_MESSAGES, max_body_bytes=MAX_BODY)
    async with async_app(**settings) as fake:
        fake.serve(n_ctx=N_CTX)
        reply = await _send(fake, case)
        assert reply.status_code == case.status, reply.text
        body = reply.json()
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"]
        if case.code:
            assert body["error"]["code"] == case.code
        if case.param:
            assert body["error"]["param"] == case.param
        assert fake.job_count() == 0
        assert (await fake.http.get("/health/live")).status_code == 200
        async with drain(fake):
            after = await fake.http.post(CHAT_PATH, json=CHAT)
        assert after.status_code == 200


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({}, "You didn't provide an API key"),
        ({"Authorization": "Bearer wrong"}, "Incorrect API key"),
        ({"Authorization": "Basic c2VjcmV0"}, "You didn't provide an API key"),
    ],
)
async def test_bad_key_is_401(header: dict[str, str], message: str) -> None:
    async with async_app(api_keys="secret,other") as fake:
        fake.serve()
        reply = await fake.http.post(CHAT_PATH, json=CHAT, headers=header)
        assert reply.status_code == 401
        assert reply.json()["error"]["code"] == "invalid_api_key"
        assert message in reply.json()["error"]["message"]
        assert fake.job_count() == 0
        async with drain(fake):
            good = await fake.http.post(CHAT_PATH, json=CHAT, headers={"Authorization": "Bearer other"})
        assert good.status_code == 200


def test_there_are_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
