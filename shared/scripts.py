"""Lua scripts that make admission, job events and claims atomic inside Redis.

Every literal the scripts compare or write (job and batch states, event kinds, stream fields, RQ's
names and states, the codes they return) comes from the enums and helpers it is named by in Python.
"""

from enum import IntEnum

from shared import names, rqcontract
from shared.events import STREAM_EVENT, STREAM_SEQ, Kind
from shared.rqcontract import JobStatus
from shared.states import BatchStatus, Status
from shared.webhooks import LUA_ANNOUNCE, LUA_RESPONSE_EVENT, RESPONSE_ID_PREFIX, RESPONSES_ENDPOINT, EventType


class AdmitOutcome(IntEnum):
    FULL = 0
    ADMITTED = 1
    REPLAYED = 2


class EmitOutcome(IntEnum):
    REFUSED = -1
    APPENDED = 0
    CANCEL_REQUESTED = 1


class ReapOutcome(IntEnum):
    IDLE = 0
    REQUEUED = 1
    OUT_OF_ATTEMPTS = 2


# CLAIM returns the new attempt number, or this when the job is not queued.
NOT_CLAIMED = -1

_ENDED = " or ".join(f"st == '{status}'" for status in Status if status.ended)


def _append_event(stream: str, channel: str, event: str, maxlen: str, ttl: str) -> str:
    """Lua that writes event number `seq` to the replay stream and the live channel (the wire forms of events.py)."""
    fields = f"'{STREAM_SEQ}', seq, '{STREAM_EVENT}', {event}"
    return f"""redis.call('XADD', {stream}, 'MAXLEN', '~', {maxlen}, '*', {fields})
redis.call('EXPIRE', {stream}, {ttl})
redis.call('PUBLISH', {channel}, seq .. '|' .. {event})"""


# Finish a batch whose lines have all ended: `settle(batch key, now)` returns 1 when it finished it.
# The batch's webhook event is announced in the same step (the batch id is the key after its prefix).
_SETTLE = (
    LUA_ANNOUNCE
    + f"""
local function settle(bkey, now)
  local b = redis.call('HMGET', bkey, 'total', 'completed', 'failed', 'status', 'owner')
  if not b[1] or tonumber(b[2] or '0') + tonumber(b[3] or '0') < tonumber(b[1]) then return 0 end
  local batch_id = string.sub(bkey, {len(names.batch_key("")) + 1})
  if b[4] == '{BatchStatus.IN_PROGRESS}' then
    redis.call('HSET', bkey, 'status', '{BatchStatus.COMPLETED}', 'finalizing_at', now, 'completed_at', now)
    announce('{EventType.BATCH_COMPLETED}', batch_id, b[5], now)
    return 1
  elseif b[4] == '{BatchStatus.CANCELLING}' then
    redis.call('HSET', bkey, 'status', '{BatchStatus.CANCELLED}', 'cancelled_at', now)
    announce('{EventType.BATCH_CANCELLED}', batch_id, b[5], now)
    return 1
  end
  return 0
end
"""
)

# Admission and enqueue in one step, so concurrent requests cannot overfill a queue.
# KEYS: llamaq job hash, then RQ's: queue list, job hash, set of queues (api/rqrecords.admit_keys)
# ARGV: depth limit, record ttl, job id, idempotency key or '', n rq field pairs, pairs..., llamaq pairs...
# Returns {ADMITTED, depth}, {FULL, depth} or {REPLAYED, existing job id} (AdmitOutcome).
ADMIT = f"""
if ARGV[4] ~= '' then
  local existing = redis.call('GET', ARGV[4])
  if existing then return {{{AdmitOutcome.REPLAYED}, existing}} end
end
local depth = redis.call('LLEN', KEYS[2])
if depth >= tonumber(ARGV[1]) then return {{{AdmitOutcome.FULL}, depth}} end
local n = tonumber(ARGV[5])
local rq = {{}}
for i = 6, 5 + 2 * n do rq[#rq + 1] = ARGV[i] end
redis.call('HSET', KEYS[3], unpack(rq))
local own = {{}}
for i = 6 + 2 * n, #ARGV do own[#own + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(own))
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[2])
if ARGV[4] ~= '' then redis.call('SET', ARGV[4], ARGV[3], 'EX', ARGV[2]) end
redis.call('SADD', KEYS[4], KEYS[2])
redis.call('RPUSH', KEYS[2], ARGV[3])
return {{{AdmitOutcome.ADMITTED}, depth + 1}}
"""

# Append one event: sequence number, replay stream, live channel, and status for terminal events.
# Refuses events for a finished job, for a stale attempt, or when the status is not the expected one,
# so a job has exactly one terminal event whoever (worker, reaper, canceller) writes first.
# A terminal event of a batch line also writes its output/error line, counts it, and finishes the
# batch when it was the last one — in the same atomic step, so no line is counted twice or lost.
# A terminal event also counts the job's end state in the metrics hash (KEYS[5], when given), and the end of a
# background response (a job enqueued for `/v1/responses`, not a batch line) announces its response.* webhook.
# KEYS: llamaq job hash, events stream, live channel, cancel key, metrics hash
# ARGV: event json, kind, attempt or '', terminal status or '', maxlen, ttl, now, expected status or '',
#       batch line body json or '', job id, http status, batch key prefix
# Returns an EmitOutcome: REFUSED, APPENDED, or CANCEL_REQUESTED (appended, and a cancel is asked for).
EMIT = (
    _SETTLE
    + LUA_RESPONSE_EVENT
    + f"""
local st = redis.call('HGET', KEYS[1], 'status')
if not st or {_ENDED} then return {EmitOutcome.REFUSED} end
if ARGV[8] ~= '' and st ~= ARGV[8] then return {EmitOutcome.REFUSED} end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then return {EmitOutcome.REFUSED} end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
if ARGV[2] == '{Kind.TOKEN}' then redis.call('HINCRBY', KEYS[1], 'tokens', 1) end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'status', ARGV[4], 'finished_at', ARGV[7], 'terminal', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[6])  -- results are kept for the retention time after the job ends
  if KEYS[5] then
    local ml = redis.call('HMGET', KEYS[1], 'model', 'lane')
    if ml[1] then redis.call('HINCRBY', KEYS[5], ml[1] .. '|' .. (ml[2] or '') .. '|jobs|' .. ARGV[4], 1) end
  end
  local batch = redis.call('HGET', KEYS[1], 'batch')
  -- A batch that expired meanwhile is not recreated (it would live on with no expiry).
  if batch and ARGV[9] ~= '' and redis.call('EXISTS', ARGV[12] .. batch) == 1 then
    local bkey = ARGV[12] .. batch
    local custom_id = redis.call('HGET', KEYS[1], 'custom_id_json')
    local head = '{{"id":"batch_req_' .. ARGV[10] .. '","custom_id":' .. custom_id
      .. ',"response":{{"status_code":' .. ARGV[11] .. ',"request_id":"' .. ARGV[10] .. '","body":'
    local line, list, counter
    if ARGV[2] == '{Kind.DONE}' then
      line, list, counter = head .. ARGV[9] .. '}},"error":null}}', bkey .. ':output', 'completed'
    else
      line, list, counter = head .. '{{"error":' .. ARGV[9] .. '}}}},"error":null}}', bkey .. ':errors', 'failed'
    end
    redis.call('RPUSH', list, line)
    redis.call('EXPIRE', list, redis.call('TTL', bkey))
    redis.call('HINCRBY', bkey, counter, 1)
    redis.call('HINCRBY', bkey, counter .. '_bytes', string.len(line) + 1)
    settle(bkey, ARGV[7])
  elseif not batch and redis.call('HGET', KEYS[1], 'endpoint') == '{RESPONSES_ENDPOINT}' then
    local owner = redis.call('HGET', KEYS[1], 'owner')
    announce(response_event(ARGV[4], ARGV[9]), '{RESPONSE_ID_PREFIX}' .. string.sub(ARGV[10], 5), owner, ARGV[7])
  end
end
{_append_event("KEYS[2]", "KEYS[3]", "ARGV[1]", maxlen="ARGV[5]", ttl="ARGV[6]")}
if redis.call('EXISTS', KEYS[4]) == 1 then return {EmitOutcome.CANCEL_REQUESTED} end
return {EmitOutcome.APPENDED}
"""
)

# A worker takes a queued job: the job becomes in_progress under a new attempt number.
# KEYS: llamaq job hash, heartbeat key. ARGV: worker name, now, heartbeat ttl, record ttl (optional).
# Returns the attempt number, or NOT_CLAIMED when the job is not queued (cancelled, finished, unknown).
CLAIM = f"""
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= '{Status.QUEUED}' then return {NOT_CLAIMED} end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'status', '{Status.IN_PROGRESS}', 'started_at', ARGV[2], 'worker', ARGV[1], 'tokens', 0)
-- The record's retention was set at enqueue: a long wait in the queue must not expire it mid-generation.
if ARGV[4] then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
return attempt
"""

# Is the job running with no live worker behind it? Returns its attempt number, or 0.
# KEYS: llamaq job hash, heartbeat key.
ORPHANED = f"""
if redis.call('HGET', KEYS[1], 'status') ~= '{Status.IN_PROGRESS}' then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
return tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0')
"""

# A running job with no heartbeat: its worker died. Drop it from RQ's started registry, then either
# put it back at the front of its lane under a retry event (attempts left) or report it for failing.
# KEYS: llamaq job hash, heartbeat key, events stream, channel, then RQ's: queue list, started registry,
#       job hash (api/rqrecords.reap_keys)
# ARGV: retries allowed, retry event json, maxlen, ttl, job id
# Returns a ReapOutcome: IDLE, REQUEUED, or OUT_OF_ATTEMPTS (the caller emits the terminal error).
REAP = f"""
if redis.call('EXISTS', KEYS[2]) == 1 then return {ReapOutcome.IDLE} end
local st = redis.call('HGET', KEYS[1], 'status')
if st == '{Status.QUEUED}' then return {ReapOutcome.IDLE} end
{rqcontract.lua_forget_started("KEYS[6]", "ARGV[5]")}
if st ~= '{Status.IN_PROGRESS}' then
  {rqcontract.lua_set_status("KEYS[7]", JobStatus.FAILED)}
  return {ReapOutcome.IDLE}
end
if tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0') > tonumber(ARGV[1]) then
  return {ReapOutcome.OUT_OF_ATTEMPTS}
end
redis.call('HSET', KEYS[1], 'status', '{Status.QUEUED}', 'worker', '')
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
{_append_event("KEYS[3]", "KEYS[4]", "ARGV[2]", maxlen="ARGV[3]", ttl="ARGV[4]")}
{rqcontract.lua_set_status("KEYS[7]", JobStatus.QUEUED)}
redis.call('LPUSH', KEYS[5], ARGV[5])
return {ReapOutcome.REQUEUED}
"""

# Finish a batch whose lines have all ended (used when the last line ended before `total` was final).
# KEYS: batch hash. ARGV: now. Returns 1 when it finished the batch.
SETTLE_BATCH = (
    _SETTLE
    + """
return settle(KEYS[1], ARGV[1])
"""
)

# Set fields of a hash only while its `status` is the expected one, and announce the webhook event the
# change makes (a batch that failed validation or expired), in the same step.
# KEYS: hash. ARGV: status, event type or '', object id, now, pairs... Returns 1 when set.
SET_IF_STATUS = (
    LUA_ANNOUNCE
    + """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[2] ~= '' then announce(ARGV[2], ARGV[3], redis.call('HGET', KEYS[1], 'owner'), ARGV[4]) end
return 1
"""
)
