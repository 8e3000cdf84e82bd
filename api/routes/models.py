"""GET /v1/models: the models at least one live worker serves, and what each can do.

Each entry is OpenAI's `Model` (`id`, `object`, `created`, `owned_by`) plus fields of llamaq's own, as
llama.cpp's server and vLLM add theirs: `kind`, `capabilities` (the endpoints it answers), `context_length`
(tokens a request may use), its live `workers` and `slots`, and its queue limits (`max_queue_depth`,
`max_batch_queue_depth`: the model's own if its workers publish them, else the API's).
"""

from typing import Any

from fastapi import APIRouter

from api import capacity
from api.deps import OwnerDep, RedisDep, SettingsDep
from shared import modelinfo, names
from shared.errors import ModelNotFound
from shared.settings import Settings

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


async def _model(redis: RedisDep, settings: Settings, name: str, created: int) -> dict[str, Any]:
    async with redis.pipeline(transaction=False) as pipe:
        modelinfo.read(pipe, name)
        capacity.live_workers(pipe, name)
        capacity.live_slots(pipe, name)
        raw, workers, slots = await pipe.execute()
    info = modelinfo.parse(raw)
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "llamaq",
        "kind": info.kind,
        "capabilities": info.capabilities,
        "context_length": info.n_ctx,
        "workers": int(workers),
        "slots": int(slots),
        "max_queue_depth": info.lane_limit(names.INTERACTIVE, settings),
        "max_batch_queue_depth": info.lane_limit(names.BATCH, settings),
    }


@router.get("/models")
async def list_models(redis: RedisDep, settings: SettingsDep, owner: OwnerDep) -> dict[str, Any]:
    live = await live_models(redis)
    data = [await _model(redis, settings, name, created) for name, created in sorted(live.items())]
    return {"object": "list", "data": data}


@router.get("/models/{model:path}")
async def retrieve_model(model: str, redis: RedisDep, settings: SettingsDep, owner: OwnerDep) -> dict[str, Any]:
    live = await live_models(redis)
    if model not in live:
        raise ModelNotFound(f"The model `{model}` does not exist or no worker serves it.", param="model")
    return await _model(redis, settings, model, live[model])
