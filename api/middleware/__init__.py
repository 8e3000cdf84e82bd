"""The API's ASGI middlewares: request log, drain on shutdown, body limit, and the dashboard's guard.

Each wraps only HTTP requests (`HttpMiddleware`); lifespan and other scopes pass straight through.
"""

from starlette.types import ASGIApp, Receive, Scope, Send


class HttpMiddleware:
    """An ASGI middleware that handles HTTP requests in `handle` and passes every other scope through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError
