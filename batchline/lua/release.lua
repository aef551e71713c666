-- Return a claimed batch's requests to pending (each to its tenant's list): nothing was created at the provider.
-- KEYS[1] tenants with pending work, KEYS[2] stats, KEYS[3] leases, KEYS[4] batch hash, KEYS[5] batch members
-- ARGV[1] request key prefix, ARGV[2] batch id, ARGV[3] now (ms), ARGV[4] reason,
-- ARGV[5] lease owner ('' for the sweeper: only once the lease expired),
-- ARGV[6] where they go in their tenant's list: 'head' (in order; the default), 'rotate' (to the head,
--   the later half first: a 400 bisection then tries the half without the head's request first) or
--   'tail' (behind the rest), ARGV[7] pending list prefix
-- Returns the number of requests returned; 0 when the batch was not claimed/creating or its lease is
-- another's (CAS lost); -1 (nothing changed) while a request its caller canceled is still in it: the
-- caller settles those first (a `canceled` delivery, deliver.lua), then releases again.
-- include: pending
local state = redis.call('HGET', KEYS[4], B.state)
if state ~= 'claimed' and state ~= 'creating' then return 0 end
if not lease_free(KEYS[4], ARGV[5], ARGV[3]) then return 0 end
local prefix, bid = ARGV[1], ARGV[2]
local where = (ARGV[6] and ARGV[6] ~= '') and ARGV[6] or 'head'
local ids = redis.call('LRANGE', KEYS[5], 0, -1)
local back, bytes, tenant_of = {}, 0, {}
for i = 1, #ids do
  local rec = redis.call('HMGET', prefix .. ids[i], R.state, R.batch, R.size, R.cancel, R.tenant)
  if rec[1] == 'batched' and rec[2] == bid then
    if rec[4] then return -1 end
    back[#back + 1] = ids[i]
    tenant_of[ids[i]] = rec[5] or ''
    bytes = bytes + tonumber(rec[3])
  end
end
for i = 1, #back do redis.call('HSET', prefix .. back[i], R.state, 'queued', R.batch, '') end
if where == 'rotate' and #back > 1 then
  local half, order = math.ceil(#back / 2), {}
  for i = half + 1, #back do order[#order + 1] = back[i] end
  for i = 1, half do order[#order + 1] = back[i] end
  back = order
end
local groups, order = {}, {}
for i = 1, #back do pending_group(groups, order, tenant_of[back[i]], back[i]) end
for _, t in ipairs(order) do
  pending_push(ARGV[7], t, groups[t], where ~= 'tail')
  if where == 'tail' and redis.call('LINDEX', ARGV[7] .. t, 0) == groups[t][1] then
    -- behind the others: nothing else of its tenant waits, so the tenant goes behind the other
    -- tenants (claims of few requests weigh the longest-waiting tenants first)
    redis.call('ZADD', KEYS[1], ARGV[3], t)
  else
    pending_rescore(KEYS[1], ARGV[7], prefix, t)
  end
end
local n = tonumber(redis.call('HGET', KEYS[4], B.n) or '0')
redis.call('HINCRBY', KEYS[2], 'in_flight', -n)
redis.call('HINCRBY', KEYS[2], 'pending', #back)
redis.call('HINCRBY', KEYS[2], 'pending_bytes', bytes)
redis.call('HSET', KEYS[4], B.state, 'released', B.released_at, ARGV[3], B.reason, ARGV[4])
lease_clear(KEYS[4])
redis.call('ZREM', KEYS[3], bid)
redis.call('DEL', KEYS[5])
return #back
