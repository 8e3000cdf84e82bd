"""Authentication and read-only mode in front of the dashboard (an ASGI wrapper around any app)."""

import base64
import binascii

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from api.middleware import HttpMiddleware
from shared.errors import InvalidRequest, Unauthorized
from shared.keys import key_matches
from shared.settings import Settings

REALM = b'Basic realm="llamaq dashboard", charset="UTF-8"'
READ_ONLY_METHODS = {"GET", "HEAD"}


def presented_secret(authorization: str) -> str | None:
    """The password of `Basic` credentials (any user name) or the token of `Bearer`."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep and password else None


def _error(status: int, message: str, code: str) -> bytes:
    # The same error object as the API's: OpenAI answers a bad key with invalid_request_error too.
    error = Unauthorized(message) if status == 401 else InvalidRequest(message, code=code)
    return orjson.dumps(error.to_dict())


class DashboardGuard(HttpMiddleware):
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        super().__init__(app)
        self.keys = [key.get_secret_value() for key in settings.dashboard_keys or settings.api_keys]
        self.actions = settings.dashboard_actions

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ()))
        secret = presented_secret(headers.get(b"authorization", b"").decode("latin-1"))
        if not self.keys:
            message = "The dashboard is disabled: set LLAMAQ_DASHBOARD_KEYS or LLAMAQ_API_KEYS."
            await _refuse(send, 403, message, "dashboard_disabled")
        elif not key_matches(secret, self.keys):
            await _refuse(send, 401, "The dashboard requires credentials (HTTP Basic or Bearer).", "invalid_api_key")
        elif not self.actions and (scope["method"] not in READ_ONLY_METHODS or "/requeue" in scope["path"]):
            message = "Dashboard actions are disabled (LLAMAQ_DASHBOARD_ACTIONS=false)."
            await _refuse(send, 403, message, "dashboard_read_only")
        else:
            await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, message: str, code: str) -> None:
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        headers.append((b"www-authenticate", REALM))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": _error(status, message, code)})
