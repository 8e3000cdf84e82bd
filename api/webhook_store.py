"""The durable delivery schedule in Redis: fan-out from the outbox, claims under a lease, the end of an attempt.

One delivery is one event to one endpoint: a hash (url, signed body, attempts, lease) and a member of
the schedule, scored by when it is due. A claim moves the score to the lease's end, so a delivery whose
API died mid-attempt is due again then and another API takes it. Each claim has its own token: only its
holder may finish it (an attempt that outlived its lease changes nothing; the event is sent again).
"""

from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from shared import names

DEAD_MAXLEN = 1000
_DELIVERY_PREFIX = names.webhook_delivery_key("")


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRIED = "retried"
    DEAD_LETTERED = "dead_lettered"


# Pop the outbox's head if it is still `ARGV[1]` (another API may have taken it) and schedule its deliveries.
# KEYS: outbox, schedule. ARGV: head entry, event body, owner, record ttl, then (delivery id, url) pairs.
FAN_OUT = f"""
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return 0 end
redis.call('LPOP', KEYS[1])
for i = 5, #ARGV, 2 do
  local key = '{_DELIVERY_PREFIX}' .. ARGV[i]
  redis.call('HSET', key, 'url', ARGV[i + 1], 'body', ARGV[2], 'owner', ARGV[3], 'attempts', 0, 'lease', '')
  redis.call('EXPIRE', key, ARGV[4])
  redis.call('ZADD', KEYS[2], 0, ARGV[i])
end
return 1
"""

# Take up to ARGV[3] due deliveries: each is leased to token ARGV[4] until ARGV[2] and counts an attempt.
# KEYS: schedule. ARGV: now, lease end, limit, token. Returns {id, attempt, url, body, owner} per delivery.
CLAIM = f"""
local out = {{}}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))) do
  local key = '{_DELIVERY_PREFIX}' .. id
  if redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    local attempt = redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'lease', ARGV[4])
    local f = redis.call('HMGET', key, 'url', 'body', 'owner')
    out[#out + 1] = {{id, attempt, f[1], f[2], f[3]}}
  end
end
return out
"""

# End an attempt, if the lease is still ARGV[2]'s: delivered (gone), retried (due at ARGV[4]) or dead-lettered.
# KEYS: schedule, delivery hash, stats, dead letters. ARGV: id, token, outcome, due, error, dead entry.
FINISH = f"""
if redis.call('HGET', KEYS[2], 'lease') ~= ARGV[2] then return 0 end
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
if ARGV[3] == '{Outcome.RETRIED}' then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
  redis.call('HSET', KEYS[2], 'last_error', ARGV[5], 'lease', '')
  return 1
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
if ARGV[3] == '{Outcome.DEAD_LETTERED}' then
  redis.call('LPUSH', KEYS[4], ARGV[6])
  redis.call('LTRIM', KEYS[4], 0, {DEAD_MAXLEN - 1})
end
return 1
"""


@dataclass(frozen=True)
class Claimed:
    delivery_id: str
    attempt: int
    url: str
    body: bytes
    owner: str
    token: str


class Store:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._fan_out = redis.register_script(FAN_OUT)
        self._claim = redis.register_script(CLAIM)
        self._finish = redis.register_script(FINISH)

    async def head(self) -> bytes | None:
        return await self.redis.lindex(names.webhook_outbox_key(), 0)

    async def fan_out(self, head: bytes, body: bytes, owner: str, ttl: int, targets: dict[str, str]) -> bool:
        """Schedule `body` to each (delivery id -> url) of `targets` if `head` is still the outbox's head."""
        keys = [names.webhook_outbox_key(), names.webhook_schedule_key()]
        args = [head, body, owner, ttl, *[item for pair in targets.items() for item in pair]]
        return bool(await self._fan_out(keys=keys, args=args))

    async def claim(self, now: float, lease: float, limit: int, token: str) -> list[Claimed]:
        rows = await self._claim(keys=[names.webhook_schedule_key()], args=[now, now + lease, limit, token])
        return [Claimed(r[0].decode(), int(r[1]), r[2].decode(), r[3], (r[4] or b"").decode(), token) for r in rows]

    async def finish(
        self, claimed: Claimed, outcome: Outcome, due: float = 0, error: str = "", dead: bytes = b""
    ) -> bool:
        keys = [
            names.webhook_schedule_key(), names.webhook_delivery_key(claimed.delivery_id),
            names.webhook_stats_key(), names.webhook_dead_key(),
        ]  # fmt: skip
        args = [claimed.delivery_id, claimed.token, outcome.value, due, error, dead]
        return bool(await self._finish(keys=keys, args=args))
