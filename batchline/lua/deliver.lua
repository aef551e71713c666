-- Settle a chunk of result lines of one batch, atomically per line:
--   'D' deliver: final outcome; append to the request's Redis stream in the same step, so a stream
--       target receives every outcome exactly once however often a chunk is replayed; count it and
--       its cost exactly once;
--   'U' undeliverable: final outcome, but its reply target refused it (the error is in the stream
--       slot); kept with its result for `batchline redeliver`;
--   'R' re-drive: back to its tenant's pending list for a new batch (attempt counted);
--   'W' external target (webhook, SQS): final outcome, kept with its result in state 'delivering' and
--       put in the outbox (KEYS[9]) due now; the delivery tasks send it (workers/delivery.py). With
--       ARGV[8] > 0 (a send task is dispatched for it), it is held for that task until ARGV[8] instead:
--       due then in the outbox and marked in KEYS[12], so beat's outbox tick does not race the task.
-- A stream target's key is checked before the append: a Celery queue (named by a target or bound by
-- kombu) or a key of another type makes that one request undeliverable; the rest of the chunk settles.
-- Only records that still belong to this batch (field b) and are in flight are touched: a replayed
-- or stale line is a no-op, and a line can never reach another request's caller.
-- KEYS[1] tenants with pending work, KEYS[2] stats, KEYS[3] counters, KEYS[4] cost hash of the day, KEYS[5] batch hash,
-- KEYS[6] set of the days that have a cost hash, KEYS[7] set of Celery queues named by reply targets,
-- KEYS[8] zset of undeliverable requests, KEYS[9] the outbox (zset of requests delivering -> next send due),
-- KEYS[10] params refs (object key -> requests not yet final),
-- KEYS[11] params objects to delete (zset: key -> when the last request referring to it became final),
-- KEYS[12] requests held for the send task dispatched for them (zset: request id -> held until, ms)
-- ARGV[1] request key prefix, ARGV[2] batch id, ARGV[3] now (ms), ARGV[4] record TTL (s), ARGV[5] the day,
-- ARGV[6] reply stream MAXLEN (approximate trim; 0: none), ARGV[7] pending list prefix,
-- ARGV[8] held for a send task until (ms; 0: none, due now),
-- then 11 fields per line: rid, action, outcome (for 'R': the reason), s3_key, stream ('' for none; for
--   'U' the error), custom_id, tenant, result_json, history_entry, model, cost ('batch_micros:standard_micros',
--   'rt:micros' for an answer of the real-time Messages API, 'unpriced' or '')
-- Returns {delivered, retried, {rid, error, ...} of the undeliverable, handed to the outbox}.
local prefix, bid, now, ttl, maxlen = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[6])
local delivered, retried, failed, bytes, handed = 0, 0, {}, 0, 0
local back, back_order = {}, {}  -- re-driven, by tenant
local counts, costs = {}, {}
local function add(t, k, n) t[k] = (t[k] or 0) + n end

-- include: targets
-- include: pending

local held = tonumber(ARGV[8])
for i = 9, #ARGV, 11 do
  local rid = ARGV[i]
  local key = prefix .. rid
  local rec = redis.call('HMGET', key, R.state, R.batch, R.history, R.size, R.attempts, R.queued_at)
  if (rec[1] == 'submitted' or rec[1] == 'ended' or rec[1] == 'batched') and rec[2] == bid then
    local history = rec[3] and (rec[3] .. '\n' .. ARGV[i + 8]) or ARGV[i + 8]
    local tenant = ARGV[i + 6]
    if ARGV[i + 1] == 'R' then
      redis.call('HSET', key, R.state, 'queued', R.batch, '', R.history, history, R.attempts, (tonumber(rec[5]) or 0) + 1)
      pending_group(back, back_order, tenant, rid)
      bytes = bytes + tonumber(rec[4] or '0')
      retried = retried + 1
      add(counts, 'redriven:' .. ARGV[i + 2], 1)
    elseif ARGV[i + 1] == 'W' then
      redis.call('HSET', key, R.state, 'delivering', R.outcome, ARGV[i + 2], R.s3_key, ARGV[i + 3],
        R.history, history, R.attempts, (tonumber(rec[5]) or 0) + 1, R.result, ARGV[i + 7],
        R.external_since, now, R.external_tries, 0)
      if held > 0 then
        redis.call('ZADD', KEYS[9], held, rid)
        redis.call('ZADD', KEYS[12], held, rid)
      else
        redis.call('ZADD', KEYS[9], now, rid)
      end
      handed = handed + 1
    end
    if ARGV[i + 1] ~= 'R' then
      local stream, err = ARGV[i + 4], nil
      if ARGV[i + 1] == 'W' then
        -- settled by the delivery tasks (external.lua)
      elseif ARGV[i + 1] == 'U' then
        err = stream
      elseif stream ~= '' then
        err = stream_key_error(stream, KEYS[7])
        if not err then
          local added = reply_append(stream, maxlen, {'custom_id', ARGV[i + 5], 'tenant', tenant,
            'outcome', ARGV[i + 2], 's3_key', ARGV[i + 3], 'batch_id', bid, 'result', ARGV[i + 7],
            -- the Celery targets' key (tenant:custom_id:queued_at): a consumer dedupes on it after a
            -- failover lost the last second of writes and an outcome is appended again
            'idempotency_key', tenant .. ':' .. ARGV[i + 5] .. ':' .. (rec[6] or '')})
          if type(added) == 'table' and added.err then err = 'redis-stream:' .. stream .. ': ' .. added.err end
        end
      end
      if ARGV[i + 1] == 'W' then
        -- counted delivered (or undeliverable) once its send settles
      elseif err then
        redis.call('HSET', key, R.state, 'undeliverable', R.outcome, ARGV[i + 2], R.s3_key, ARGV[i + 3],
          R.undeliverable_at, now, R.history, history, R.attempts, (tonumber(rec[5]) or 0) + 1,
          R.undeliverable_error, err, R.result, ARGV[i + 7])
        redis.call('ZADD', KEYS[8], now, rid)
        failed[#failed + 1] = rid
        failed[#failed + 1] = err
        add(counts, 'undeliverable:' .. tenant, 1)
      else
        redis.call('HSET', key, R.state, 'delivered', R.outcome, ARGV[i + 2], R.s3_key, ARGV[i + 3],
          R.delivered_at, now, R.history, history, R.attempts, (tonumber(rec[5]) or 0) + 1)
        delivered = delivered + 1
        add(counts, 'delivered:' .. tenant .. ':' .. ARGV[i + 2], 1)
      end
      local p = redis.call('HGET', key, R.params)
      if p and string.byte(p, 1) == 64 then  -- kept by reference: one request fewer refers to the object
        local object = string.sub(p, 2)
        if redis.call('HINCRBY', KEYS[10], object, -1) <= 0 then
          redis.call('HDEL', KEYS[10], object)
          redis.call('ZADD', KEYS[11], now, object)
        end
      end
      redis.call('HDEL', key, R.params)
      add(counts, 'settled_bytes:' .. tenant, tonumber(rec[4] or '0'))  -- admission control: no longer held
      local cost = ARGV[i + 10]
      if cost == 'unpriced' then  -- succeeded, but its model has no price: counted apart, never guessed
        redis.call('HSET', key, R.cost, 'unpriced')
        add(costs, tenant .. '|' .. ARGV[i + 9] .. '|unpriced', 1)
      elseif string.sub(cost, 1, 3) == 'rt:' then  -- answered real-time (deadlines): paid at standard price
        local paid = tonumber(string.sub(cost, 4))
        redis.call('HSET', key, R.cost, paid, R.standard_cost, paid)
        local group = tenant .. '|' .. ARGV[i + 9]
        add(costs, group .. '|realtime', paid)
        add(costs, group .. '|realtime_requests', 1)
      elseif cost ~= '' then
        local sep = string.find(cost, ':', 1, true)
        local batch_cost, standard = tonumber(string.sub(cost, 1, sep - 1)), tonumber(string.sub(cost, sep + 1))
        redis.call('HSET', key, R.cost, batch_cost, R.standard_cost, standard)
        local group = tenant .. '|' .. ARGV[i + 9]
        add(costs, group .. '|batch', batch_cost)
        add(costs, group .. '|standard', standard)
        add(costs, group .. '|requests', 1)
        add(costs, '@batch', batch_cost)
        add(costs, '@standard', standard)
      end
      redis.call('EXPIRE', key, ttl)
    end
  end
end
if retried > 0 then
  for _, t in ipairs(back_order) do
    pending_push(ARGV[7], t, back[t], false)
    pending_rescore(KEYS[1], ARGV[7], prefix, t)
  end
  redis.call('HINCRBY', KEYS[2], 'pending', retried)
  redis.call('HINCRBY', KEYS[2], 'pending_bytes', bytes)
end
for k, n in pairs(counts) do redis.call('HINCRBY', KEYS[3], k, n) end
if next(costs) then redis.call('SADD', KEYS[6], ARGV[5]) end
for k, n in pairs(costs) do
  if k == '@batch' then redis.call('HINCRBY', KEYS[5], B.cost, n)
  elseif k == '@standard' then redis.call('HINCRBY', KEYS[5], B.standard_cost, n)
  else redis.call('HINCRBY', KEYS[4], k, n) end
end
return {delivered, retried, failed, handed}
