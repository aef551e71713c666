-- Save the provider's batch id: creating -> submitted, requests batched -> submitted.
-- KEYS[1] leases, KEYS[2] open, KEYS[3] provider index, KEYS[4] batch hash, KEYS[5] batch members
-- ARGV[1] request key prefix, ARGV[2] batch id, ARGV[3] provider batch id, ARGV[4] now (ms),
-- ARGV[5] adopted (0/1), ARGV[6] lease owner ('' for the sweeper: only once the lease expired)
-- Returns 1 on success, 0 when the batch was not in `creating` or its lease is another's (CAS lost).
if redis.call('HGET', KEYS[4], B.state) ~= 'creating' or not lease_free(KEYS[4], ARGV[6], ARGV[4]) then return 0 end
if redis.call('HSETNX', KEYS[3], ARGV[3], ARGV[2]) == 0 then return 0 end
local prefix, bid = ARGV[1], ARGV[2]
local ids = redis.call('LRANGE', KEYS[5], 0, -1)
for _, rid in ipairs(ids) do
  local key = prefix .. rid
  local rec = redis.call('HMGET', key, R.state, R.batch)
  if rec[1] == 'batched' and rec[2] == bid then redis.call('HSET', key, R.state, 'submitted') end
end
redis.call('HSET', KEYS[4], B.state, 'submitted', B.provider_id, ARGV[3], B.submitted_at, ARGV[4],
  B.adopted, ARGV[5])
lease_clear(KEYS[4])
redis.call('ZREM', KEYS[1], bid)
redis.call('ZADD', KEYS[2], ARGV[4], bid)
return 1
