"""One log line and one set of HTTP figures per request, under an `X-Request-ID` accepted or generated.

Pure ASGI (not BaseHTTPMiddleware) so streamed responses pass through untouched and are timed to
their last byte. The line carries ids, route, status and timings; never a body.
"""

import logging
import re
import secrets
import time
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import HttpMetrics
from api.middleware import HttpMiddleware
from shared.logs import REQUEST_ID

logger = logging.getLogger("llamaq.requests")

HEADER = b"x-request-id"
# Ids a client may choose; anything else is replaced, so no caller text reaches the logs.
_ACCEPTED = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def annotate(request: Request, **fields: Any) -> None:
    """Add fields (job id, model) to the request's log line; a no-op where the middleware is absent."""
    line = getattr(request.state, "log", None)
    if isinstance(line, dict):
        line.update(fields)


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == HEADER and _ACCEPTED.fullmatch(value):
            return value.decode()
    return "req_" + secrets.token_hex(12)


def route_of(scope: Scope) -> str:
    """The route template (`/v1/jobs/{job_id}`), never the raw path: bounded label values."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    # A mounted app (the dashboard) sets no route; its mount point is the root path it was given.
    mounted = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
    return mounted or "unmatched"


class RequestLog(HttpMiddleware):
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_of(scope)
        line: dict[str, Any] = {}
        scope.setdefault("state", {})["log"] = line
        status = 500
        started = time.perf_counter()
        token = REQUEST_ID.set(request_id)

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            seconds = time.perf_counter() - started
            route = route_of(scope)
            self.metrics.observe(route, scope["method"], status, seconds, str(line.get("refused_model", "")))
            extra = {"method": scope["method"], "route": route, "status": status, "ms": round(seconds * 1000, 2)}
            logger.info("request", extra={**extra, **line})
            REQUEST_ID.reset(token)
