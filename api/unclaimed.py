"""Jobs a worker popped but never claimed: put back at the front of their lane.

A worker moves a job from its lane into RQ's intermediate list, registers it as started, then claims
it (queued -> in_progress). A worker that dies inside that window leaves the job `queued` with no
heartbeat to miss: the reaper's dead-worker check never sees it, and RQ would only fail it minutes
later. Seen there twice, `stale` seconds apart, it goes back to its lane. Should the popping worker
still be alive after all, both copies race for the claim and exactly one wins.
"""

import time

from redis.asyncio import Redis

from api import rqrecords
from shared import names, rqcontract
from shared.rqcontract import JobStatus
from shared.states import Status

# KEYS: llamaq job hash, then RQ's: queue list, intermediate list, started registry, job hash
#       (api/rqrecords.rescue_keys)
# ARGV: job id, now, stale seconds
# Returns 1 when the job went back to its lane.
RESCUE = f"""
if redis.call('HGET', KEYS[1], 'status') ~= '{Status.QUEUED}' then return 0 end
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
{rqcontract.lua_forget_started("KEYS[4]", "ARGV[1]")}
if not redis.call('LPOS', KEYS[2], ARGV[1]) then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  {rqcontract.lua_set_status("KEYS[5]", JobStatus.QUEUED)}
end
return 1
"""


async def rescue_unclaimed(redis: Redis, model: str, lane: str, stale: float) -> int:
    """Requeue the lane's popped-but-unclaimed jobs seen for `stale` seconds; returns how many."""
    popped = await rqrecords.popped_job_ids(redis, model, lane)
    job_ids = set(popped) | set(await rqrecords.started_job_ids(redis, model, lane))
    rescue = redis.register_script(RESCUE)
    rescued = 0
    for job_id in job_ids:
        keys = [names.job_key(job_id), *rqrecords.rescue_keys(model, lane, job_id)]
        rescued += int(await rescue(keys=keys, args=[job_id, time.time(), stale]))
    return rescued
