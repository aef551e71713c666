-- Store a chunk of validated requests, idempotently per (tenant, custom_id).
-- KEYS[1] pending list, KEYS[2] stats hash, KEYS[3] counters hash
-- ARGV[1] request key prefix, ARGV[2] now (ms), then 9 fields per request:
--   rid, tenant, custom_id, params_json, reply_to, metadata_json, digest, size, betas ('' for none)
-- Returns one code per request: 1 accepted, 0 duplicate (same digest), 2 conflict (other digest).
local prefix, now = ARGV[1], ARGV[2]
local codes, accepted, bytes, tenants = {}, {}, 0, {}
for i = 3, #ARGV, 9 do
  local rid = ARGV[i]
  local key = prefix .. rid
  local existing = redis.call('HGET', key, 'd')
  if existing then
    codes[#codes + 1] = (existing == ARGV[i + 6]) and 0 or 2
  else
    redis.call('HSET', key, 't', ARGV[i + 1], 'c', ARGV[i + 2], 'p', ARGV[i + 3], 'd', ARGV[i + 6],
      'z', ARGV[i + 7], 's', 'queued', 'q', now)
    if ARGV[i + 4] ~= '' then redis.call('HSET', key, 'rt', ARGV[i + 4]) end
    if ARGV[i + 5] ~= '' then redis.call('HSET', key, 'm', ARGV[i + 5]) end
    if ARGV[i + 8] ~= '' then redis.call('HSET', key, 'bt', ARGV[i + 8]) end
    accepted[#accepted + 1] = rid
    bytes = bytes + tonumber(ARGV[i + 7])
    tenants[ARGV[i + 1]] = (tenants[ARGV[i + 1]] or 0) + 1
    codes[#codes + 1] = 1
  end
end
if #accepted > 0 then
  for j = 1, #accepted, 5000 do
    redis.call('RPUSH', KEYS[1], unpack(accepted, j, math.min(j + 4999, #accepted)))
  end
  redis.call('HINCRBY', KEYS[2], 'pending_bytes', bytes)
  for tenant, n in pairs(tenants) do redis.call('HINCRBY', KEYS[3], 'accepted:' .. tenant, n) end
end
return codes
