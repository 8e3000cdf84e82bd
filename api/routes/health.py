"""Liveness (the process answers) and readiness (Redis answers; workers per model)."""

import asyncio
from typing import Any

from fastapi import APIRouter
from redis.exceptions import RedisError

from api import capacity, rqrecords
from api.deps import RedisDep, RelayDep
from api.jsonresponse import OrjsonResponse
from shared import names

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("")
@router.get("/ready")
async def ready(redis: RedisDep, relay: RelayDep) -> Any:
    """Also at /health, where llama.cpp's server and vLLM answer their probes: 200 only when it can serve."""
    try:
        async with asyncio.timeout(1.0):
            await redis.ping()
            models = await _models(redis)
    except (RedisError, OSError, TimeoutError):
        return _unavailable("unreachable")
    if not relay.connected:
        # Redis answers again but the token relay has not resubscribed yet: generation would still get 503.
        return _unavailable("relay reconnecting")
    return {"status": "ready", "redis": "ok", "models": models}


def _unavailable(redis_state: str) -> OrjsonResponse:
    return OrjsonResponse({"status": "unavailable", "redis": redis_state, "models": {}}, status_code=503)


async def _models(redis: RedisDep) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw in await redis.hkeys(names.models_key()):
        model = raw.decode()
        load = await capacity.load(redis, model)
        if not load.workers:
            continue
        out[model] = {
            "workers": load.workers,
            "busy": load.busy_workers,
            "slots": load.slots,
            "slots_busy": load.busy_slots,
            "queued": await rqrecords.queue_lengths(redis, model),
        }
    return out
