"""GET /v1/models: the models at least one live worker serves."""

from typing import Any

from fastapi import APIRouter

from api import capacity
from api.deps import OwnerDep, RedisDep
from shared import names
from shared.errors import ModelNotFound

router = APIRouter(prefix="/v1", tags=["models"])


async def live_models(redis: RedisDep) -> dict[str, int]:
    """Model id -> unix time first served, for models with a live worker now."""
    known = await redis.hgetall(names.models_key())
    live = {}
    for model, created in known.items():
        name = model.decode()
        if await capacity.live_workers(redis, name):
            live[name] = int(created)
    return live


def _model(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "llamaq"}


@router.get("/models")
async def list_models(redis: RedisDep, owner: OwnerDep) -> dict[str, Any]:
    live = await live_models(redis)
    return {"object": "list", "data": [_model(name, created) for name, created in sorted(live.items())]}


@router.get("/models/{model:path}")
async def retrieve_model(model: str, redis: RedisDep, owner: OwnerDep) -> dict[str, Any]:
    live = await live_models(redis)
    if model not in live:
        raise ModelNotFound(f"The model `{model}` does not exist or no worker serves it.", param="model")
    return _model(model, live[model])
