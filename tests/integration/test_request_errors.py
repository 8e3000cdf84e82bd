"""Bad requests get OpenAI error objects (400 with `param`, never FastAPI's 422 `detail`), from the real API."""

from typing import Any

import httpx
import orjson
import pytest
from redis import Redis

from shared import events, names
from tests.probes import error_of
from tests.stack import MODEL, Stack

pytestmark = pytest.mark.integration

HI = [{"role": "user", "content": "hi"}]
BASE = {"model": MODEL, "messages": HI}
CHAT = "/v1/chat/completions"
LEGACY = "/v1/completions"


def post(stack: Stack, path: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(
        f"{stack.base_url}{path}", content=content, headers={"content-type": "application/json"}, timeout=60
    )


def job_records(stack: Stack) -> set[bytes]:
    """Records of synchronous jobs; background work other tests left on the shared stack is ignored."""
    with Redis.from_url(stack.redis_url) as redis:
        keys = [key for key in redis.scan_iter(match=names.job_key("job_*")) if key.count(b":") == 2]
        return {key for key in keys if redis.hget(key, "lane") == names.INTERACTIVE.encode()}


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (CHAT, b'{"model": "x", "messages": [', None),
        (CHAT, b"not json at all", None),
        (CHAT, b"[1, 2]", None),
        (CHAT, {"messages": HI}, "model"),
        (CHAT, {"model": MODEL}, "messages"),
        (CHAT, {"model": 5, "messages": HI}, "model"),
        (CHAT, {"model": MODEL, "messages": "hi"}, "messages"),
        (CHAT, {"model": MODEL, "messages": []}, "messages"),
        (CHAT, {"model": MODEL, "messages": [{"content": "hi"}]}, "messages[0].role"),
        (CHAT, {"model": MODEL, "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        (CHAT, {"model": MODEL, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            CHAT,
            {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0].type",
        ),
        (CHAT, {**BASE, "max_tokens": "5"}, "max_tokens"),
        (CHAT, {**BASE, "max_tokens": 0}, "max_tokens"),
        (CHAT, {**BASE, "temperature": 3}, "temperature"),
        (CHAT, {**BASE, "top_p": "high"}, "top_p"),
        (CHAT, {**BASE, "stream": "yes"}, "stream"),
        (CHAT, {**BASE, "stop": 5}, "stop"),
        (CHAT, {**BASE, "seed": 1.5}, "seed"),
        (CHAT, {**BASE, "stream_options": {"include_usage": "y"}}, "stream_options.include_usage"),
        (CHAT, {**BASE, "stream_options": {"include_usage": True}}, "stream_options"),
        (LEGACY, {"model": MODEL, "prompt": "hi", "stream": False, "stream_options": {}}, "stream_options"),
        (CHAT, {**BASE, "response_format": {"type": "xml"}}, "response_format"),
        (CHAT, {**BASE, "response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (CHAT, {**BASE, "n": 17}, "n"),
        (CHAT, {**BASE, "frobnicate": True}, "frobnicate"),
        (LEGACY, {"model": MODEL}, "prompt"),
        (LEGACY, {"model": MODEL, "prompt": 5}, "prompt"),
        (LEGACY, {"model": MODEL, "prompt": "hi", "max_tokens": -1}, "max_tokens"),
        (LEGACY, {"model": MODEL, "prompt": "hi", "echo": True}, "echo"),
    ],
)
def test_invalid_body_is_400_with_param(stack: Stack, path: str, body: Any, param: str | None) -> None:
    error = error_of(post(stack, path, body))
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if param is not None:
        assert param.split(".")[-1].split("[")[0] in error["message"]


def test_unknown_route_and_wrong_method_are_error_objects(stack: Stack) -> None:
    assert error_of(httpx.get(f"{stack.base_url}/v1/nothing-here", timeout=5), 404)["code"] == "not_found"
    assert error_of(httpx.get(f"{stack.base_url}{CHAT}", timeout=5), 405)["code"] == "method_not_allowed"


@pytest.mark.parametrize(("path", "field", "param"), [(CHAT, "messages", "messages"), (LEGACY, "prompt", "prompt")])
def test_completion_budget_over_the_context_is_refused_before_queueing(
    stack: Stack, path: str, field: str, param: str
) -> None:
    """The API's lower bound on the prompt's tokens plus max_tokens already exceeds the context."""
    before = job_records(stack)
    prompt: Any = HI if field == "messages" else "hi"
    error = error_of(post(stack, path, {"model": MODEL, field: prompt, "max_tokens": 2048, "stream": True}))
    assert (error["code"], error["param"], error["type"]) == ("context_length_exceeded", param, "invalid_request_error")
    assert job_records(stack) == before, "the request never reached the queue"


@pytest.mark.parametrize(
    ("path", "field", "param", "max_tokens"),
    [(CHAT, "messages", "messages", None), (CHAT, "messages", "messages", 1500), (LEGACY, "prompt", "prompt", 16)],
)
def test_prompt_over_the_context_is_refused_by_the_worker(
    stack: Stack, path: str, field: str, param: str, max_tokens: int | None
) -> None:
    """Too long for the context, yet too short in bytes for the API's bound: only the tokenizer can tell."""
    words = "word " * (3000 if max_tokens != 1500 else 1000)
    prompt: Any = [{"role": "user", "content": words}] if field == "messages" else words
    before = job_records(stack)
    body = {"model": MODEL, field: prompt, "max_tokens": max_tokens}
    error = error_of(post(stack, path, body))
    assert (error["code"], error["param"], error["type"]) == ("context_length_exceeded", param, "invalid_request_error")
    created = job_records(stack) - before
    assert len(created) == 1, "the worker made the check"
    job = created.pop().decode().removeprefix(names.job_key(""))
    with Redis.from_url(stack.redis_url) as redis:
        record = redis.hgetall(names.job_key(job))
        kinds = [orjson.loads(fields[b"e"])["k"] for _, fields in redis.xrange(names.events_key(job))]
    assert record[b"status"] == b"failed" and record[b"tokens"] == b"0"
    assert kinds == [events.Kind.ERROR], "exactly one terminal event, and nothing before it"
    assert orjson.loads(record[b"terminal"])["error"]["code"] == "context_length_exceeded"
    streamed = error_of(post(stack, path, {**body, "stream": True}))
    assert streamed["code"] == "context_length_exceeded"
