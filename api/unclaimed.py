"""Jobs a worker popped but never claimed: put back at the front of their lane.

A worker moves a job from its lane into RQ's intermediate list, registers it as started, then claims
it (queued -> in_progress). A worker that dies inside that window leaves the job `queued` with no
heartbeat to miss: the reaper's dead-worker check never sees it, and RQ would only fail it minutes
later. Seen there twice, `stale` seconds apart, it goes back to its lane. Should the popping worker
still be alive after all, both copies race for the claim and exactly one wins.
"""

import time

from redis.asyncio import Redis
from rq.intermediate_queue import IntermediateQueue

from shared import names

# KEYS: llamaq job hash, queue list, intermediate list, rq started registry, rq job hash
# ARGV: job id, now, stale seconds
# Returns 1 when the job went back to its lane.
RESCUE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
local attempt = redis.call('HGET', KEYS[1], 'attempt') or '0'
local seen = redis.call('HGET', KEYS[1], 'unclaimed_seen')
local since = nil
if seen then
  local a, t = string.match(seen, '^(%d+):(.+)$')
  if a == attempt then since = tonumber(t) end
end
if not since then
  redis.call('HSET', KEYS[1], 'unclaimed_seen', attempt .. ':' .. ARGV[2])
  return 0
end
if tonumber(ARGV[2]) - since < tonumber(ARGV[3]) then return 0 end
redis.call('HDEL', KEYS[1], 'unclaimed_seen')
redis.call('LREM', KEYS[3], 0, ARGV[1])
local prefix = ARGV[1] .. ':'
for _, member in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  if string.sub(member, 1, string.len(prefix)) == prefix then redis.call('ZREM', KEYS[4], member) end
end
if not redis.call('LPOS', KEYS[2], ARGV[1]) then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[5], 'status', 'queued')
end
return 1
"""


def intermediate_key(model: str, lane: str) -> str:
    """RQ's list of jobs popped from a lane and not yet started."""
    return IntermediateQueue.get_intermediate_queue_key(names.rq_queue_key(model, lane))


async def rescue_unclaimed(redis: Redis, model: str, lane: str, stale: float) -> int:
    """Requeue the lane's popped-but-unclaimed jobs seen for `stale` seconds; returns how many."""
    popped = await redis.lrange(intermediate_key(model, lane), 0, -1)
    started = await redis.zrange(names.rq_started_key(model, lane), 0, -1)
    job_ids = {raw.decode() for raw in popped} | {raw.decode().rsplit(":", 1)[0] for raw in started}
    rescue = redis.register_script(RESCUE)
    rescued = 0
    for job_id in job_ids:
        keys = [
            names.job_key(job_id), names.rq_queue_key(model, lane), intermediate_key(model, lane),
            names.rq_started_key(model, lane), names.rq_job_key(job_id),
        ]  # fmt: skip
        rescued += int(await rescue(keys=keys, args=[job_id, time.time(), stale]))
    return rescued
