"""The FastAPI application: clients built once in the lifespan, routers, and the error mapping."""

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from redis.asyncio import Redis
from redis.driver_info import DriverInfo
from redis.exceptions import RedisError

from api import errors
from api.admission import Admission
from api.batch_runner import BatchRunner
from api.dashboard import mount as mount_dashboard
from api.metrics import HttpMetrics
from api.middleware.body_limit import BodyLimit
from api.middleware.cors import add_cors
from api.middleware.drain import Drain, DrainStreams
from api.middleware.request_log import RequestLog
from api.middleware.tracing import TraceRequests
from api.openapi import documented_openapi
from api.reaper import Reaper
from api.relay import Relay
from api.routes import batches, embeddings, files, generate, health, jobs, metrics, models, responses
from api.routes.webhooks import router as webhooks_router
from api.webhook_dispatch import Dispatcher
from shared.redis_client import async_client
from shared.settings import Settings
from shared.tracing import Tracing
from shared.webhook_config import key_endpoints

logger = logging.getLogger(__name__)


def redis_client(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise RuntimeError("LLAMAQ_REDIS_URL is not set (llamaq up sets it for you)")
    # Short connect timeout: while Redis is down, callers get a 503 within a second.
    # Driver info built once: by default every new connection looks redis-py's version up in the package
    # metadata (about 1 ms, on the event loop), and a burst of requests opens hundreds of connections.
    return async_client(
        settings.redis_url,
        driver_info=DriverInfo(),
        socket_connect_timeout=0.5,
        socket_timeout=5,
        health_check_interval=15,
        max_connections=512,
    )


def webhooks_on(settings: Settings) -> bool:
    return bool(settings.webhook_urls or key_endpoints(settings.webhook_key_urls))


def create_app(settings: Settings, redis: Redis | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = redis if redis is not None else redis_client(settings)
        relay = Relay(client, settings)
        app.state.settings = settings
        app.state.redis = client
        app.state.relay = relay
        app.state.admission = Admission(client, settings, tracing)
        app.state.batches = BatchRunner(client, settings, app.state.admission)
        reaper = Reaper(client, settings, app.state.batches)
        dispatcher = Dispatcher(client, settings) if webhooks_on(settings) else None
        await relay.start()
        await reaper.start()
        if dispatcher:
            await dispatcher.start()
        try:
            await app.state.batches.resume_all()
        except RedisError:
            logger.warning("could not resume batches: Redis unavailable at start-up")
        try:
            yield
        finally:
            if dispatcher:
                await dispatcher.stop()
            await reaper.stop()
            await app.state.batches.stop()
            await relay.stop()
            if redis is None:
                await client.aclose()
            tracing.shutdown()  # exports the spans still buffered

    # Built here, not in the lifespan: the request middleware holds it.
    tracing = Tracing.build(settings, "llamaq-api")
    # FastAPI 0.165+ can trace requests, bodies included, through a global OpenTelemetry provider that an
    # environment configures: llamaq traces through its own provider (shared/tracing.py), never with prompts.
    quiet: dict[str, Any] = (
        {"telemetry": {"tracing": False}} if "telemetry" in inspect.signature(FastAPI).parameters else {}
    )
    app = FastAPI(title="llamaq", version="0.1.0", lifespan=lifespan, **quiet)
    app.openapi = documented_openapi(app)  # type: ignore[method-assign]
    errors.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, files_limit=settings.max_file_bytes + 65_536)
    # Built here, not in the lifespan: the server's signal handling reaches the drain through app.state.
    app.state.drain = Drain()
    app.state.http_metrics = HttpMetrics()
    app.add_middleware(DrainStreams, drain=app.state.drain)
    add_cors(app, settings.cors_origins)  # outside the body limit: a 413 carries the CORS headers too
    if tracing.on:  # inside the request log, so the span names the request id
        app.add_middleware(TraceRequests, tracing=tracing)
    app.add_middleware(RequestLog, metrics=app.state.http_metrics)  # outermost: times and logs everything
    app.include_router(generate.router)
    app.include_router(embeddings.router)
    app.include_router(models.router)
    app.include_router(jobs.router)
    app.include_router(responses.router)
    app.include_router(files.router)
    app.include_router(batches.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(webhooks_router)
    mount_dashboard(app, settings)
    return app
