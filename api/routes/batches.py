"""OpenAI Batch API: create, retrieve, list, cancel."""

from typing import Any

from fastapi import APIRouter, Request

from api import batch_stop
from api.batch_runner import BatchRunner
from api.batches import batch_object, create_batch, load_batch
from api.deps import OwnerDep, RedisDep, SettingsDep
from api.listing import After, Limit, page
from shared import names
from shared.schemas import BatchCreate

router = APIRouter(prefix="/v1/batches", tags=["batches"])


def _runner(request: Request) -> BatchRunner:
    return request.app.state.batches


@router.post("")
async def create(body: BatchCreate, request: Request, owner: OwnerDep, redis: RedisDep, settings: SettingsDep) -> Any:
    batch_id = await create_batch(redis, settings, body, owner)
    _runner(request).start(batch_id)
    return batch_object(batch_id, await load_batch(redis, batch_id, owner))


@router.get("")
async def list_batches(
    owner: OwnerDep,
    redis: RedisDep,
    limit: Limit = 20,
    after: After = None,
) -> dict[str, Any]:
    async def render(batch_id: str) -> dict[str, Any]:
        return batch_object(batch_id, await load_batch(redis, batch_id, owner))

    return await page(redis, names.owner_index_key(owner, "batches"), limit, after, render)


@router.get("/{batch_id}")
async def retrieve(batch_id: str, owner: OwnerDep, redis: RedisDep) -> dict[str, Any]:
    return batch_object(batch_id, await load_batch(redis, batch_id, owner))


@router.post("/{batch_id}/cancel")
async def cancel(batch_id: str, request: Request, owner: OwnerDep, redis: RedisDep) -> dict[str, Any]:
    await load_batch(redis, batch_id, owner)
    if await batch_stop.request_cancel(redis, batch_id):
        _runner(request).start(batch_id, "cancel")
    return batch_object(batch_id, await load_batch(redis, batch_id, owner))
