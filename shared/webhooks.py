"""Announcing webhook events: one outbox entry, written in the same atomic step as the state change.

Call `announce(pipe, type, object_id, owner)` on the (sync or async) transaction that makes the change,
or, inside a Lua script, define `LUA_ANNOUNCE` at the top and call `announce(type, id, owner, now)` where
the state changes. Nothing is written unless an API delivers webhooks (`webhooks_enabled_key`), and the
outbox is capped, so announcing costs nothing on a deployment without endpoints. The API fans each entry
out to its endpoints (`api/webhook_dispatch.py`).
"""

import time
from enum import StrEnum

from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.client import Pipeline

from shared import names

OUTBOX_MAXLEN = 100_000


class EventType(StrEnum):
    """The events sent, as OpenAI names them."""

    BATCH_COMPLETED = "batch.completed"
    BATCH_FAILED = "batch.failed"
    BATCH_EXPIRED = "batch.expired"
    BATCH_CANCELLED = "batch.cancelled"
    RESPONSE_COMPLETED = "response.completed"
    RESPONSE_FAILED = "response.failed"
    RESPONSE_CANCELLED = "response.cancelled"
    RESPONSE_INCOMPLETE = "response.incomplete"


_OUTBOX = names.webhook_outbox_key()

# `announce(kind, object_id, owner, now)`: appends `{type, id, owner, at}` to the outbox; 1 when written.
LUA_ANNOUNCE = f"""
local function announce(kind, object_id, owner, now)
  if redis.call('EXISTS', '{names.webhooks_enabled_key()}') == 0 then return 0 end
  local entry = cjson.encode({{type = kind, id = object_id, owner = owner or '', at = math.floor(tonumber(now))}})
  redis.call('RPUSH', '{_OUTBOX}', entry)
  redis.call('LTRIM', '{_OUTBOX}', -{OUTBOX_MAXLEN}, -1)
  return 1
end
"""

# ARGV: type, object id, owner, now.
ANNOUNCE = LUA_ANNOUNCE + "return announce(ARGV[1], ARGV[2], ARGV[3], ARGV[4])\n"


def announce(
    pipe: Pipeline | AsyncPipeline, type: EventType | str, object_id: str, owner: str, now: float | None = None
) -> None:
    """Queue the announcement on `pipe`: atomic with the pipeline's other commands when it is a transaction."""
    pipe.eval(ANNOUNCE, 0, str(type), object_id, owner, int(now if now is not None else time.time()))
