"""Lua scripts that make admission, job events and claims atomic inside Redis."""

# Admission and enqueue in one step, so concurrent requests cannot overfill a queue.
# KEYS: queue list, rq job hash, llamaq job hash, rq:queues set
# ARGV: depth limit, record ttl, job id, idempotency key or '', n rq field pairs, pairs..., llamaq pairs...
# Returns {1, depth} admitted, {0, depth} full, {2, existing job id} idempotent replay.
ADMIT = """
if ARGV[4] ~= '' then
  local existing = redis.call('GET', ARGV[4])
  if existing then return {2, existing} end
end
local depth = redis.call('LLEN', KEYS[1])
if depth >= tonumber(ARGV[1]) then return {0, depth} end
local n = tonumber(ARGV[5])
local rq = {}
for i = 6, 5 + 2 * n do rq[#rq + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(rq))
local own = {}
for i = 6 + 2 * n, #ARGV do own[#own + 1] = ARGV[i] end
redis.call('HSET', KEYS[3], unpack(own))
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
if ARGV[4] ~= '' then redis.call('SET', ARGV[4], ARGV[3], 'EX', ARGV[2]) end
redis.call('SADD', KEYS[4], KEYS[1])
redis.call('RPUSH', KEYS[1], ARGV[3])
return {1, depth + 1}
"""

# Append one event: sequence number, replay stream, live channel, and status for terminal events.
# Refuses events for a finished job, for a stale attempt, or when the status is not the expected one,
# so a job has exactly one terminal event whoever (worker, reaper, canceller) writes first.
# A terminal event of a batch line also writes its output/error line, counts it, and finishes the
# batch when it was the last one — in the same atomic step, so no line is counted twice or lost.
# A terminal event also counts the job's end state in the metrics hash (KEYS[5], when given).
# KEYS: llamaq job hash, events stream, live channel, cancel key, metrics hash
# ARGV: event json, kind, attempt or '', terminal status or '', maxlen, ttl, now, expected status or '',
#       batch line body json or '', job id, http status, batch key prefix
# Returns -1 refused, 0 appended, 1 appended and cancellation requested.
EMIT = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st or st == 'completed' or st == 'failed' or st == 'cancelled' or st == 'expired' then return -1 end
if ARGV[8] ~= '' and st ~= ARGV[8] then return -1 end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then return -1 end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
if ARGV[2] == 't' then redis.call('HINCRBY', KEYS[1], 'tokens', 1) end
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
    local head = '{"id":"batch_req_' .. ARGV[10] .. '","custom_id":' .. custom_id
      .. ',"response":{"status_code":' .. ARGV[11] .. ',"request_id":"' .. ARGV[10] .. '","body":'
    local line, list, counter
    if ARGV[2] == 'd' then
      line, list, counter = head .. ARGV[9] .. '},"error":null}', bkey .. ':output', 'completed'
    else
      line, list, counter = head .. '{"error":' .. ARGV[9] .. '}},"error":null}', bkey .. ':errors', 'failed'
    end
    redis.call('RPUSH', list, line)
    redis.call('EXPIRE', list, redis.call('TTL', bkey))
    redis.call('HINCRBY', bkey, counter, 1)
    redis.call('HINCRBY', bkey, counter .. '_bytes', string.len(line) + 1)
    local b = redis.call('HMGET', bkey, 'total', 'completed', 'failed', 'status')
    if tonumber(b[2] or '0') + tonumber(b[3] or '0') >= tonumber(b[1] or '-1') then
      if b[4] == 'in_progress' then
        redis.call('HSET', bkey, 'status', 'completed', 'finalizing_at', ARGV[7], 'completed_at', ARGV[7])
      elseif b[4] == 'cancelling' then
        redis.call('HSET', bkey, 'status', 'cancelled', 'cancelled_at', ARGV[7])
      end
    end
  end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 's', seq, 'e', ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('PUBLISH', KEYS[3], seq .. '|' .. ARGV[1])
return redis.call('EXISTS', KEYS[4])
"""

# A worker takes a queued job: the job becomes in_progress under a new attempt number.
# KEYS: llamaq job hash, heartbeat key. ARGV: worker name, now, heartbeat ttl, record ttl (optional).
# Returns the attempt number, or -1 when the job is not queued (cancelled, finished, unknown).
CLAIM = """
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'queued' then return -1 end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'status', 'in_progress', 'started_at', ARGV[2], 'worker', ARGV[1], 'tokens', 0)
-- The record's retention was set at enqueue: a long wait in the queue must not expire it mid-generation.
if ARGV[4] then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
return attempt
"""

# Is the job running with no live worker behind it? Returns its attempt number, or 0.
# KEYS: llamaq job hash, heartbeat key.
ORPHANED = """
if redis.call('HGET', KEYS[1], 'status') ~= 'in_progress' then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
return tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0')
"""

# A running job with no heartbeat: its worker died. Drop it from RQ's started registry, then either
# put it back at the front of its lane under a retry event (attempts left) or report it for failing.
# KEYS: llamaq job hash, heartbeat key, queue list, rq started registry, rq job hash, events stream, channel
# ARGV: retries allowed, retry event json, maxlen, ttl, job id
# Returns 0 nothing to do, 1 requeued, 2 out of attempts (the caller emits the terminal error).
REAP = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local st = redis.call('HGET', KEYS[1], 'status')
if st == 'queued' then return 0 end
local prefix = ARGV[5] .. ':'
for _, member in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  if string.sub(member, 1, string.len(prefix)) == prefix then redis.call('ZREM', KEYS[4], member) end
end
if st ~= 'in_progress' then
  redis.call('HSET', KEYS[5], 'status', 'failed')
  return 0
end
if tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0') > tonumber(ARGV[1]) then return 2 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'worker', '')
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[3], '*', 's', seq, 'e', ARGV[2])
redis.call('EXPIRE', KEYS[6], ARGV[4])
redis.call('PUBLISH', KEYS[7], seq .. '|' .. ARGV[2])
redis.call('HSET', KEYS[5], 'status', 'queued')
redis.call('LPUSH', KEYS[3], ARGV[5])
return 1
"""

# Finish a batch whose lines have all ended (used when the last line ended before `total` was final).
# KEYS: batch hash. ARGV: now. Returns 1 when it finished the batch.
SETTLE_BATCH = """
local b = redis.call('HMGET', KEYS[1], 'total', 'completed', 'failed', 'status')
if not b[1] or tonumber(b[2] or '0') + tonumber(b[3] or '0') < tonumber(b[1]) then return 0 end
if b[4] == 'in_progress' then
  redis.call('HSET', KEYS[1], 'status', 'completed', 'finalizing_at', ARGV[1], 'completed_at', ARGV[1])
  return 1
elseif b[4] == 'cancelling' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'cancelled_at', ARGV[1])
  return 1
end
return 0
"""

# Set fields of a hash only while its `status` is the expected one. KEYS: hash. ARGV: status, pairs...
# Returns 1 when set.
SET_IF_STATUS = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
return 1
"""
