"""`GET /metrics`: this API process's HTTP figures plus the fleet's, read from Redis when scraped.

HTTP counters belong to the process (scrape every API instance); queue, worker and job figures come
from Redis and are the same whichever instance is scraped (aggregate them with `max`, not `sum`).
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import RedisDep, SettingsDep, owner_of
from api.fleet import Snapshot, fleet_families
from api.metrics import HttpMetrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, settings: SettingsDep, redis: RedisDep) -> Any:
    if settings.metrics_auth:
        owner_of(request, settings)
    http: HttpMetrics = request.app.state.http_metrics
    body = generate_latest(Snapshot(http.families(), await fleet_families(redis)))  # type: ignore[arg-type]
    return Response(body, media_type=CONTENT_TYPE_LATEST)
