-- Store a chunk of validated requests, idempotently per (tenant, custom_id).
-- KEYS[1] pending list, KEYS[2] stats hash, KEYS[3] counters hash,
-- KEYS[4] set of reply stream names, KEYS[5] set of Celery queues named by reply targets
-- ARGV[1] request key prefix, ARGV[2] now (ms), then 8 fields per request:
--   rid, tenant, custom_id, params_json, reply_to, metadata_json, digest, size
-- Returns one code per request: 1 accepted, 0 duplicate (same digest), 2 conflict (other digest),
-- or a string: the reply_to target's key collides with the broker's or a key of another kind.
local prefix, now = ARGV[1], ARGV[2]
local codes, accepted, bytes, tenants = {}, {}, 0, {}
local checked = {}  -- reply_to -> false (fine) or the reason it is refused, once per chunk

-- include: targets

local function target_error(rt)
  local key, is_stream = target_key(rt)
  if is_stream then return stream_key_error(key, KEYS[5]) or false end
  return queue_key_error(key, KEYS[4]) or false
end

local function register(rt)
  local key, is_stream = target_key(rt)
  redis.call('SADD', is_stream and KEYS[4] or KEYS[5], key)
end

for i = 3, #ARGV, 8 do
  local rid, rt = ARGV[i], ARGV[i + 4]
  local key = prefix .. rid
  local existing = redis.call('HGET', key, 'd')
  if existing then
    codes[#codes + 1] = (existing == ARGV[i + 6]) and 0 or 2
  else
    local refused = false
    if rt ~= '' then
      if checked[rt] == nil then
        checked[rt] = target_error(rt)
        if not checked[rt] then register(rt) end
      end
      refused = checked[rt]
    end
    if refused then
      codes[#codes + 1] = refused
    else
      redis.call('HSET', key, 't', ARGV[i + 1], 'c', ARGV[i + 2], 'p', ARGV[i + 3], 'd', ARGV[i + 6],
        'z', ARGV[i + 7], 's', 'queued', 'q', now)
      if rt ~= '' then redis.call('HSET', key, 'rt', rt) end
      if ARGV[i + 5] ~= '' then redis.call('HSET', key, 'm', ARGV[i + 5]) end
      accepted[#accepted + 1] = rid
      bytes = bytes + tonumber(ARGV[i + 7])
      tenants[ARGV[i + 1]] = (tenants[ARGV[i + 1]] or 0) + 1
      codes[#codes + 1] = 1
    end
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
