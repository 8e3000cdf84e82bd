"""On shutdown, open event streams end with a terminal error event instead of a cut connection.

uvicorn, told to stop, waits for open responses before it cancels them, and a token stream may
last minutes. `Drain` is triggered from the server's signal handling; each open `text/event-stream`
response then gets one `server_shutting_down` error event, its handler is cancelled (which cancels
an interactive job, as when a client leaves) and the response ends.
"""

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware import HttpMiddleware
from api.streaming import sse
from shared.errors import Unavailable

SHUTTING_DOWN = Unavailable("The server is shutting down; retry the request.", code="server_shutting_down")


class Drain:
    """Open event streams, and the shutdown trigger that ends them (callable from a signal handler)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open: dict[_Stream, asyncio.Task[Any]] = {}
        self._enders: set[asyncio.Task[None]] = set()
        self.triggered = False

    def trigger(self) -> None:
        self.triggered = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._schedule)

    def _schedule(self) -> None:
        ender = asyncio.ensure_future(self._end_all())
        self._enders.add(ender)
        ender.add_done_callback(self._enders.discard)

    def opened(self, stream: "_Stream") -> None:
        self._loop = asyncio.get_running_loop()
        self._open[stream] = stream.task
        if self.triggered:
            self._schedule()

    def closed(self, stream: "_Stream") -> None:
        self._open.pop(stream, None)

    async def _end_all(self) -> None:
        for stream, task in list(self._open.items()):
            if await stream.end():
                task.cancel()


class DrainStreams(HttpMiddleware):
    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        super().__init__(app)
        self.drain = drain

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if task is None:
            await self.app(scope, receive, send)
            return
        stream = _Stream(send, self.drain, task)
        try:
            await self.app(scope, receive, stream.send)
        except asyncio.CancelledError:
            if not stream.ended_by_drain:
                raise
            task.uncancel()  # our own cancellation: the response is complete
        finally:
            self.drain.closed(stream)


class _Stream:
    """Forwards a response; once ended by the drain, drops whatever its handler still sends."""

    def __init__(self, send: Send, drain: Drain, task: "asyncio.Task[Any]") -> None:
        self.task = task
        self._send = send
        self._drain = drain
        self._lock = asyncio.Lock()
        self._finished = False
        self.ended_by_drain = False

    async def send(self, message: Message) -> None:
        async with self._lock:
            if self._finished:
                return
            if message["type"] == "http.response.start":
                headers: Any = message.get("headers", ())
                if any(k == b"content-type" and v.startswith(b"text/event-stream") for k, v in headers):
                    self._drain.opened(self)
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                self._finished = True
                self._drain.closed(self)
            await self._send(message)

    async def end(self) -> bool:
        """Send the terminal event and end the response; False when it had already ended."""
        async with self._lock:
            if self._finished:
                return False
            self._finished = self.ended_by_drain = True
            body = sse(SHUTTING_DOWN.to_dict())
            await self._send({"type": "http.response.body", "body": body, "more_body": False})
            return True
