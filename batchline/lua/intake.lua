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

-- A reply stream must not be a Celery queue (named by a target, or bound by kombu) nor a key of
-- another type; a Celery target's queue must not be a reply stream nor a key other than a list.
local function target_error(rt)
  local stream = string.match(rt, '^redis%-stream:(.+)$')
  if stream then
    if redis.call('SISMEMBER', KEYS[5], stream) == 1 or redis.call('EXISTS', '_kombu.binding.' .. stream) == 1 then
      return 'stream ' .. stream .. ' is a Celery queue'
    end
    local kind = redis.call('TYPE', stream).ok
    if kind ~= 'none' and kind ~= 'stream' then return 'stream ' .. stream .. ' is an existing key of type ' .. kind end
    return false
  end
  local queue = string.match(rt, '^celery:[^@]*@(.+)$') or 'celery'
  if redis.call('SISMEMBER', KEYS[4], queue) == 1 then return 'queue ' .. queue .. ' is a reply stream' end
  local kind = redis.call('TYPE', queue).ok
  if kind ~= 'none' and kind ~= 'list' then return 'queue ' .. queue .. ' is an existing key of type ' .. kind end
  return false
end

local function register(rt)
  local stream = string.match(rt, '^redis%-stream:(.+)$')
  if stream then redis.call('SADD', KEYS[4], stream)
  else redis.call('SADD', KEYS[5], string.match(rt, '^celery:[^@]*@(.+)$') or 'celery') end
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
