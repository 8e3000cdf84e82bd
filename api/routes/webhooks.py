"""`GET /v1/webhooks/dead_letters`: the webhook deliveries given up on, for the events of the caller's objects."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import OwnerDep, RedisDep, SettingsDep
from api.webhook_views import dead_letters

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.get("/dead_letters")
async def list_dead_letters(
    owner: OwnerDep, redis: RedisDep, settings: SettingsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    # Without API keys every object is `public`: the whole list.
    data = await dead_letters(redis, owner if settings.api_keys else None, limit)
    return {"object": "list", "data": data}
