-- Atomically move up to N pending requests (cut at a byte budget) into a new claimed batch.
-- KEYS[1] pending, KEYS[2] stats, KEYS[3] leases, KEYS[4] batches, KEYS[5] batch hash, KEYS[6] batch members
-- ARGV[1] request key prefix, ARGV[2] batch id, ARGV[3] max requests, ARGV[4] max bytes,
-- ARGV[5] now (ms), ARGV[6] lease expiry (ms)
-- Returns {rid1, params1, rid2, params2, ...} of the claimed requests (empty when none).
-- A batch carries one beta set (its anthropic-beta header): that of the first queued request. Queued
-- requests of other beta sets met on the way stay at the head of pending, in order, for a later batch.
local prefix, bid = ARGV[1], ARGV[2]
local max_n, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local ids = redis.call('LRANGE', KEYS[1], 0, max_n - 1)
local out, taken, bytes, consumed = {}, {}, 0, 0
local betas, other = nil, {}
for i, rid in ipairs(ids) do
  local key = prefix .. rid
  local rec = redis.call('HMGET', key, 's', 'z', 'p', 'bt')
  if rec[1] == 'queued' then
    local bt = rec[4] or ''
    if betas == nil then betas = bt end
    if bt ~= betas then
      other[#other + 1] = rid
    else
      local z = tonumber(rec[2])
      if #taken > 0 and bytes + z > max_bytes then break end
      taken[#taken + 1] = rid
      bytes = bytes + z
      redis.call('HSET', key, 's', 'batched', 'b', bid)
      out[#out + 1] = rid
      out[#out + 1] = rec[3]
    end
  end
  -- entries that are no longer queued (canceled, gone) are dropped from pending as we pass them
  consumed = i
end
if consumed > 0 then redis.call('LTRIM', KEYS[1], consumed, -1) end
if #other > 0 then  -- back to the head in their order: push the last first
  local rev = {}
  for j = #other, 1, -1 do rev[#rev + 1] = other[j] end
  for j = 1, #rev, 5000 do redis.call('LPUSH', KEYS[1], unpack(rev, j, math.min(j + 4999, #rev))) end
end
if #taken == 0 then return out end
if betas ~= '' then redis.call('HSET', KEYS[5], 'betas', betas) end
for i = 1, #taken, 5000 do
  redis.call('RPUSH', KEYS[6], unpack(taken, i, math.min(i + 4999, #taken)))
end
redis.call('HSET', KEYS[5], 'state', 'claimed', 'n', #taken, 'bytes', bytes, 'claimed_at', ARGV[5])
redis.call('HINCRBY', KEYS[2], 'in_flight', #taken)
redis.call('HINCRBY', KEYS[2], 'pending_bytes', -bytes)
redis.call('ZADD', KEYS[3], ARGV[6], bid)
redis.call('ZADD', KEYS[4], ARGV[5], bid)
return out
