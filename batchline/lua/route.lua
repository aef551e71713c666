-- Route deadline requests (workers/deadlines.py), atomically per request:
--   'T' take real-time: a queued request leaves the queue (counted out of pending now; claim.lua drops
--       its list entry as it passes) into the real-time pseudo-batch (`keys.REALTIME_BATCH`), state
--       'batched', and into the real-time set with a lease; a call task answers it (workers/realtime.py).
--       One already claimed into a batch is watched instead (code 'watched'); one already routed (another
--       pass took it first) is left as it is.
--   'B' leave to its batch: watched (KEYS[3]) until its batch is too late.
--   'H' hedge: one in a batch (batched, submitted, ended) is also sent real-time; it stays in its batch,
--       and whichever answer reaches deliver.lua first is delivered (the other finds it final).
--       A queued one is taken as with 'T'.
--   'L' late: its tenant's real-time budget is spent; it waits for its batch, flagged late (R.late) and
--       counted (counters 'deadline_late:TENANT'), watched no more.
--   'F' fall back: a real-time call that failed or was lost. A taken request goes back to its tenant's
--       pending list for a batch (history entry, path 'batch'); a hedged one just leaves the real-time set.
-- KEYS[1] tenants with pending work, KEYS[2] stats, KEYS[3] deadlines watched, KEYS[4] deadlines not yet
-- routed, KEYS[5] the real-time set (zset: rid -> lease until, ms), KEYS[6] counters
-- ARGV[1] request key prefix, ARGV[2] now (ms), ARGV[3] lease until (ms), ARGV[4] pending list prefix,
-- ARGV[5] the real-time pseudo-batch id, then 4 per request: rid, action, reason, history entry
-- Returns one code per request: 'taken', 'hedged', 'watched', 'late', 'back', 'released' or 'gone'.
-- include: pending
local prefix, now, lease_until, lists, rtb = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local out = {}
local function hist(rec, entry) return rec and (rec .. '\n' .. entry) or entry end
for i = 6, #ARGV, 4 do
  local rid, action, reason, entry = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local key = prefix .. rid
  local rec = redis.call('HMGET', key, R.state, R.batch, R.size, R.history, R.deadline, R.path, R.tenant)
  local state, bid = rec[1], rec[2]
  local code = 'gone'
  if not state then
    redis.call('ZREM', KEYS[4], rid)
    redis.call('ZREM', KEYS[3], rid)
    redis.call('ZREM', KEYS[5], rid)
  elseif (action == 'T' or action == 'H') and state == 'queued' then
    redis.call('HINCRBY', KEYS[2], 'pending', -1)
    redis.call('HINCRBY', KEYS[2], 'pending_bytes', -tonumber(rec[3] or '0'))
    redis.call('HSET', key, R.state, 'batched', R.batch, rtb, R.path, 'realtime', R.path_reason, reason,
      R.history, hist(rec[4], entry))
    redis.call('ZREM', KEYS[4], rid)
    redis.call('ZREM', KEYS[3], rid)
    redis.call('ZADD', KEYS[5], lease_until, rid)
    code = 'taken'
  elseif action == 'H' and (state == 'batched' or state == 'submitted' or state == 'ended') and bid ~= rtb
      and bid ~= 'canceled' and rec[6] ~= 'hedged' then
    redis.call('HSET', key, R.path, 'hedged', R.path_reason, reason, R.history, hist(rec[4], entry))
    redis.call('ZREM', KEYS[3], rid)
    redis.call('ZADD', KEYS[5], lease_until, rid)
    code = 'hedged'
  elseif action == 'T' or action == 'B' then
    redis.call('ZREM', KEYS[4], rid)
    -- routed already (two passes read the same slice: the route tick and a pack), or out of any batch
    -- of the provider's (real-time, canceled): nothing to watch, nothing to overwrite
    if not rec[6] and bid ~= rtb and bid ~= 'canceled'
        and (state == 'queued' or state == 'batched' or state == 'submitted' or state == 'ended') then
      redis.call('HSET', key, R.path, 'batch', R.path_reason, reason)
      redis.call('ZADD', KEYS[3], tonumber(rec[5]) or now, rid)
      code = 'watched'
    end
  elseif action == 'L' then
    redis.call('ZREM', KEYS[4], rid)
    redis.call('ZREM', KEYS[3], rid)
    if (state == 'queued' or state == 'batched' or state == 'submitted' or state == 'ended') and rec[6] ~= 'hedged'
        and bid ~= rtb then
      redis.call('HSET', key, R.path, 'batch', R.path_reason, reason, R.late, '1', R.history, hist(rec[4], entry))
      redis.call('HINCRBY', KEYS[6], 'deadline_late:' .. rec[7], 1)
      code = 'late'
    end
  elseif action == 'F' then
    redis.call('ZREM', KEYS[5], rid)
    if state == 'batched' and bid == rtb then
      redis.call('HSET', key, R.state, 'queued', R.batch, '', R.path, 'batch', R.path_reason, reason,
        R.history, hist(rec[4], entry))
      pending_push(lists, rec[7], {rid}, true)  -- at the head: its deadline is near
      pending_rescore(KEYS[1], lists, prefix, rec[7])
      redis.call('HINCRBY', KEYS[2], 'pending', 1)
      redis.call('HINCRBY', KEYS[2], 'pending_bytes', tonumber(rec[3] or '0'))
      code = 'back'
    else
      if rec[6] == 'hedged' and (state == 'batched' or state == 'submitted' or state == 'ended') then
        redis.call('HSET', key, R.path_reason, reason, R.history, hist(rec[4], entry))
      end
      code = 'released'
    end
  else
    redis.call('ZREM', KEYS[3], rid)  -- 'H' on a request already final (or already hedged)
  end
  out[#out + 1] = code
end
return out
