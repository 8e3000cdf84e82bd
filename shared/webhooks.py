"""Announcing webhook events: one outbox entry, written in the same atomic step as the state change.

Call `announce(pipe, type, object_id, owner)` on the (sync or async) transaction that makes the change,
or, inside a Lua script, define `LUA_ANNOUNCE` at the top and call `announce(type, id, owner, now)` where
the state changes. Nothing is written unless an API delivers webhooks (`webhooks_enabled_key`), and the
outbox is capped, so announcing costs nothing on a deployment without endpoints. The API fans each entry
out to its endpoints (`api/webhook_dispatch.py`).
"""

import secrets
import time
from enum import StrEnum

import orjson
from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.client import Pipeline

from shared import names
from shared.states import Status

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

# A background response is a job enqueued with `endpoint` = RESPONSES_ENDPOINT; its id is the job's hex.
RESPONSES_ENDPOINT = "/v1/responses"
RESPONSE_ID_PREFIX = "resp_"

# `response_event(terminal status, completion json or '')`: the response.* type a job's end makes; a
# completion cut at its token budget (finish_reason `length`) is `incomplete`, as the Response object says.
LUA_RESPONSE_EVENT = f"""
local function response_event(status, body)
  if status == '{Status.CANCELLED}' then return '{EventType.RESPONSE_CANCELLED}' end
  if status ~= '{Status.COMPLETED}' then return '{EventType.RESPONSE_FAILED}' end
  local ok, completion = pcall(cjson.decode, body)
  local choice = ok and type(completion) == 'table' and type(completion.choices) == 'table' and completion.choices[1]
  if type(choice) == 'table' and choice.finish_reason == 'length' then return '{EventType.RESPONSE_INCOMPLETE}' end
  return '{EventType.RESPONSE_COMPLETED}'
end
"""

# ARGV: type, object id, owner, now.
ANNOUNCE = LUA_ANNOUNCE + "return announce(ARGV[1], ARGV[2], ARGV[3], ARGV[4])\n"


def announce(
    pipe: Pipeline | AsyncPipeline, type: EventType | str, object_id: str, owner: str, now: float | None = None
) -> None:
    """Queue the announcement on `pipe`: atomic with the pipeline's other commands when it is a transaction."""
    pipe.eval(ANNOUNCE, 0, str(type), object_id, owner, int(now if now is not None else time.time()))


def thin_event(entry: dict[str, object]) -> tuple[str, bytes]:
    """OpenAI's thin event for an outbox entry, and its new id (the `webhook-id` of every attempt)."""
    event_id = "evt_" + secrets.token_hex(16)
    event = {"id": event_id, "object": "event", "created_at": entry["at"], "type": entry["type"]}
    return event_id, orjson.dumps({**event, "data": {"id": entry["id"]}})
