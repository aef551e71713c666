-- Return a claimed batch's requests to the head of pending: nothing was created at the provider.
-- KEYS[1] pending, KEYS[2] stats, KEYS[3] leases, KEYS[4] batch hash, KEYS[5] batch members
-- ARGV[1] request key prefix, ARGV[2] batch id, ARGV[3] now (ms), ARGV[4] reason,
-- ARGV[5] lease owner ('' for the sweeper: only once the lease expired)
-- Returns the number of requests returned (0 when the batch was not claimed/creating or its lease is
-- another's: CAS lost).
local state = redis.call('HGET', KEYS[4], B.state)
if state ~= 'claimed' and state ~= 'creating' then return 0 end
if not lease_free(KEYS[4], ARGV[5], ARGV[3]) then return 0 end
local prefix, bid = ARGV[1], ARGV[2]
local ids = redis.call('LRANGE', KEYS[5], 0, -1)
local back, bytes = {}, 0
for i = #ids, 1, -1 do
  local key = prefix .. ids[i]
  local rec = redis.call('HMGET', key, R.state, R.batch, R.size, R.cancel)
  if rec[1] == 'batched' and rec[2] == bid then
    if rec[4] then  -- its caller canceled it while it was in this batch: final, not sent again
      redis.call('HSET', key, R.state, 'canceled', R.outcome, 'canceled', R.batch, '', R.delivered_at, ARGV[3])
      redis.call('HDEL', key, R.params)
    else
      redis.call('HSET', key, R.state, 'queued', R.batch, '')
      back[#back + 1] = ids[i]
      bytes = bytes + tonumber(rec[3])
    end
  end
end
for i = 1, #back, 5000 do
  redis.call('LPUSH', KEYS[1], unpack(back, i, math.min(i + 4999, #back)))
end
local n = tonumber(redis.call('HGET', KEYS[4], B.n) or '0')
redis.call('HINCRBY', KEYS[2], 'in_flight', -n)
redis.call('HINCRBY', KEYS[2], 'pending_bytes', bytes)
redis.call('HSET', KEYS[4], B.state, 'released', B.released_at, ARGV[3], B.reason, ARGV[4])
lease_clear(KEYS[4])
redis.call('ZREM', KEYS[3], bid)
redis.call('DEL', KEYS[5])
return #back
