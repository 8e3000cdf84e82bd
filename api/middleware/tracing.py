"""`TraceRequests`: one server span per HTTP request, a child of the caller's `traceparent` when it sends one.

Pure ASGI like the request log, so a streamed response is spanned to its last byte. Added only with tracing on.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware import HttpMiddleware
from api.middleware.request_log import route_of
from shared.logs import REQUEST_ID
from shared.tracing import FIELDS, Tracing

_HEADERS = {name.encode() for name in FIELDS}


class TraceRequests(HttpMiddleware):
    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        super().__init__(app)
        self.tracing = tracing

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = {name.decode(): value.decode("latin-1") for name, value in scope["headers"] if name in _HEADERS}
        method = scope["method"]
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        with self.tracing.span(method, self.tracing.extract(incoming), "server", attributes) as span:
            request_id = REQUEST_ID.get()
            if request_id:
                span.set_attribute("llamaq.request_id", request_id)

            async def _send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            try:
                await self.app(scope, receive, _send)
            finally:
                route = route_of(scope)  # known once routing ran
                span.set_attribute("http.route", route)
                span.update_name(f"{method} {route}")
