"""Request body limit, enforced on what is actually received (chunked bodies included), not just the header."""

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware import HttpMiddleware
from shared.errors import PayloadTooLarge


class _Exceeded(Exception):
    """Raised from `receive` once the body passes the limit; the app's own answer is then replaced."""


class BodyLimit(HttpMiddleware):
    """413 when a body exceeds `limit` bytes; upload routes (prefix `files_prefix`) get `files_limit`."""

    def __init__(self, app: ASGIApp, limit: int, files_limit: int, files_prefix: str = "/v1/files") -> None:
        super().__init__(app)
        self.limit = limit
        self.files_limit = files_limit
        self.files_prefix = files_prefix

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.files_limit if scope["path"].startswith(self.files_prefix) else self.limit
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        received, exceeded, answered = 0, False, False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _Exceeded
            return message

        async def guarded_send(message: Message) -> None:
            # Frameworks turn an error raised while reading the body into their own 400; send the 413 instead.
            nonlocal answered
            if not exceeded:
                answered = answered or message["type"] == "http.response.start"
                await send(message)
            elif message["type"] == "http.response.start" and not answered:
                answered = True
                await _too_large(send, limit)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _Exceeded:
            if not answered:
                answered = True
                await _too_large(send, limit)


async def _too_large(send: Send, limit: int) -> None:
    error = PayloadTooLarge(f"The request body exceeds this server's limit of {limit} bytes.")
    body = orjson.dumps(error.to_dict())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
