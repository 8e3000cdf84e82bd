"""Shutdown drain: open event streams get one terminal event and end; other responses are left alone."""

import asyncio
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from api.middleware.drain import Drain, DrainStreams

SCOPE: Scope = {"type": "http", "method": "GET", "path": "/", "headers": []}


async def endless_stream(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    try:
        while True:
            await send({"type": "http.response.body", "body": b"data: {}\n\n", "more_body": True})
            await asyncio.sleep(0.01)
    finally:
        # What a real handler does when cancelled (cancel its job); it may still try to send.
        await send({"type": "http.response.body", "body": b"data: late\n\n", "more_body": False})


def slow_json(started: asyncio.Event) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        started.set()
        await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    return app


async def _receive() -> Message:
    await asyncio.sleep(3600)
    return {"type": "http.disconnect"}


async def test_an_open_stream_ends_with_one_terminal_event() -> None:
    drain, sent, flowing = Drain(), [], asyncio.Event()

    async def send(message: Message) -> None:
        sent.append(message)
        if len(sent) >= 3:
            flowing.set()

    served = asyncio.create_task(DrainStreams(endless_stream, drain)(dict(SCOPE), _receive, send))
    await asyncio.wait_for(flowing.wait(), 5)
    drain.trigger()
    await asyncio.wait_for(served, 5)
    last = sent[-1]
    assert last["more_body"] is False
    assert orjson.loads(last["body"].removeprefix(b"data: "))["error"]["code"] == "server_shutting_down"
    assert all(b"late" not in message.get("body", b"") for message in sent)
    assert [m["more_body"] for m in sent if m["type"] == "http.response.body"].count(False) == 1


async def test_other_responses_finish_normally() -> None:
    drain, sent, started = Drain(), [], asyncio.Event()

    async def send(message: Message) -> None:
        sent.append(message)

    served = asyncio.create_task(DrainStreams(slow_json(started), drain)(dict(SCOPE), _receive, send))
    await started.wait()
    drain.trigger()
    await asyncio.wait_for(served, 5)
    assert sent[-1] == {"type": "http.response.body", "body": b"{}", "more_body": False}


async def test_a_stream_opened_after_the_trigger_is_ended_at_once() -> None:
    drain, sent = Drain(), []
    drain.trigger()

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(DrainStreams(endless_stream, drain)(dict(SCOPE), _receive, send), 5)
    assert b"server_shutting_down" in sent[-1]["body"]
