"""rq-dashboard at /dashboard: inside the API, or alone as `llamaq dashboard`; always behind authentication.

rq-dashboard's own auth exists only in its CLI, so `DashboardGuard` wraps the mounted WSGI app. Job
arguments hold the prompt and its pages insert several fields unescaped (`<%= %>`), so every JSON
answer is scrubbed: the call string (function + arguments) is replaced and all strings are escaped.
rq-dashboard keeps its serializer and worker-row builder at module level, so those are set there.
"""

import html
import json
import logging
from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from api import dashboard_webhooks
from api.middleware.dashboard_guard import DashboardGuard
from shared.logs import configure_logging
from shared.payload import JOB_DESCRIPTION, JOB_FUNCTION
from shared.redis_client import sync_client
from shared.settings import Settings

logger = logging.getLogger(__name__)

PREFIX = "/dashboard"
HIDDEN_CALL = f"{JOB_FUNCTION}(...)"


def scrub(value: Any) -> Any:
    """Escape every string for HTML and drop call strings, which carry the job's arguments."""
    if isinstance(value, dict):
        return {key: HIDDEN_CALL if key == "call_string" else scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item) for item in value]
    if isinstance(value, str):
        return html.escape(value, quote=True)
    return value


def current_job(job: Any) -> Any:
    """rq-dashboard's worker row without the call string: it would unpickle the JSON job to print its args."""
    if job is None:
        return "idle"
    created = job.created_at.isoformat() if job.created_at else None
    return {"job_id": job.id, "description": JOB_DESCRIPTION, "created_at": created, "call_string": HIDDEN_CALL}


def flask_app(settings: Settings) -> Any:
    """rq-dashboard's Flask app on our Redis, reading jobs with RQ's JSON serializer (never pickle)."""
    from flask import Flask, Response
    from rq.serializers import JSONSerializer
    from rq_dashboard import default_settings, web

    # Named after the package: its templates ask for the app-level `static` route, served from its folder.
    app = Flask("rq_dashboard")
    app.config.from_object(default_settings)
    app.config.update(
        RQ_DASHBOARD_REDIS_URL=[settings.redis_url],
        RQ_DASHBOARD_DISABLE_DELETE=not settings.dashboard_actions,
        RQ_DASHBOARD_SHOW_FULL_ARGS=False,
    )
    # rq-dashboard keeps its serializer in a module-level object; its default is pickle.
    web.config.serializer = JSONSerializer
    web.serialize_current_job = current_job
    app.register_blueprint(web.blueprint, url_prefix="")
    # rq-dashboard connects by itself; it reads `redis+sentinel://` URLs in the same form (redis-sentinel-url).
    web.setup_rq_connection(app)

    @app.route("/webhooks")
    def _webhooks() -> Response:
        with sync_client(settings.redis_url or "") as client:
            return Response(dashboard_webhooks.page(client), mimetype="text/html")

    @app.after_request
    def _scrub(response: Response) -> Response:
        if response.is_json:
            response.set_data(json.dumps(scrub(response.get_json())))
        return response

    return app


def dashboard_asgi(settings: Settings) -> ASGIApp:
    from a2wsgi import WSGIMiddleware

    return DashboardGuard(WSGIMiddleware(flask_app(settings)), settings)  # type: ignore[arg-type]


def mount(app: FastAPI, settings: Settings) -> bool:
    """Mount the dashboard when its optional dependencies are installed (`llamaq[dashboard]`)."""
    try:
        inner = dashboard_asgi(settings)
    except ImportError:
        logger.warning("dashboard not mounted: install llamaq[dashboard]")
        return False
    app.mount(PREFIX, inner)
    return True


def standalone(settings: Settings) -> Starlette:
    async def _root(request: Any) -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/")

    async def _live(request: Any) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    routes = [Route("/", _root), Route("/health/live", _live), Mount(PREFIX, dashboard_asgi(settings))]
    return Starlette(routes=routes)


def main(settings: Settings) -> None:
    """`llamaq dashboard`: the dashboard alone, on LLAMAQ_HOST:LLAMAQ_PORT."""
    import uvicorn

    configure_logging(settings)
    if not settings.redis_url:
        raise SystemExit("LLAMAQ_REDIS_URL is not set")
    uvicorn.run(standalone(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)
