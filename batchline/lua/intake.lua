-- Store a chunk of validated requests, idempotently per (tenant, custom_id).
-- KEYS[1] tenants with pending work (zset), KEYS[2] stats hash, KEYS[3] counters hash,
-- KEYS[4] set of reply stream names, KEYS[5] set of Celery queues named by reply targets,
-- KEYS[6] params refs (object key -> requests not yet final that refer to it), KEYS[7] params to delete (zset),
-- KEYS[8] deadline requests not yet routed (zset: rid -> deadline ms; workers/deadlines.py)
-- ARGV[1] request key prefix, ARGV[2] now (ms), ARGV[3] pending list prefix (one list per tenant),
-- ARGV[4] the broker's key prefix (kombu's global_keyprefix: '' but in cluster mode; a Celery queue Q is
--   the list ARGV[4] .. Q), admission control (0: no limit): ARGV[5] max queued requests, ARGV[6] max
--   queued bytes, ARGV[7] percent of Redis maxmemory intake may fill, ARGV[8] K, then K groups of 5: tenant, its max requests, the
--   limit's name, its max bytes, that limit's name (-1: none; the tighter of admission control's
--   per-tenant limit and the tenant's own quota, named so a refusal says which: batchline/quotas.py);
-- then 11 fields per request: rid, tenant, custom_id, params_json (or '@KEY': kept in the object store,
--   batchline/objects.py), reply_to, metadata_json, digest, size, betas ('' for none), deadline (ms, 0:
--   none), model ('' unless it has a deadline)
-- Returns one code per request: 1 accepted, 0 duplicate (same digest), 2 conflict (other digest),
-- or a string: the reply_to target's key collides with the broker's or a key of another kind, or
-- 'backpressure|LIMIT|CURRENT|MAX|TENANT': a limit is reached. From the first such request on, no
-- new request of the chunk is stored (the caller resumes there), duplicates are still answered.
-- Queued requests and bytes are those waiting in the pending lists; a tenant's are those accepted and
-- not yet final (from the counters: accepted - delivered - canceled, and their bytes).
local prefix, now = ARGV[1], ARGV[2]
local codes, bytes, tenants, tenant_bytes = {}, 0, {}, {}
local accepted, accepted_order, n_accepted = {}, {}, 0  -- by tenant
local broker_prefix = ARGV[4]
local max_n, max_b, mem_pct = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local limits, first = {}, 9 + 5 * tonumber(ARGV[8])
for j = 9, first - 1, 5 do
  limits[ARGV[j]] = {tonumber(ARGV[j + 1]), tonumber(ARGV[j + 3]), ARGV[j + 2], ARGV[j + 4]}
end
local refused_by = nil  -- once set, every new request of the chunk is refused with it

local queued = redis.call('HMGET', KEYS[2], 'pending', 'pending_bytes')
local queued_n, queued_b = tonumber(queued[1]) or 0, tonumber(queued[2]) or 0
-- Redis memory: the high-water mark is mem_pct of maxmemory; what this chunk adds counts as it goes
local mem_used, mem_high = 0, 0
if mem_pct > 0 then
  local info = redis.call('INFO', 'memory')
  local maxmem = tonumber(string.match(info, 'maxmemory:(%d+)'))
  if maxmem and maxmem > 0 then
    mem_used, mem_high = tonumber(string.match(info, 'used_memory:(%d+)')), math.floor(maxmem * mem_pct / 100)
  end
end

-- a tenant's outstanding requests and bytes, read once per chunk
local outstanding = {}
local function tenant_state(tenant)
  local st = outstanding[tenant]
  if not st then
    local v = redis.call('HMGET', KEYS[3], 'accepted:' .. tenant, 'delivered:' .. tenant .. ':succeeded',
      'delivered:' .. tenant .. ':errored', 'delivered:' .. tenant .. ':canceled', 'delivered:' .. tenant .. ':expired',
      'canceled:' .. tenant, 'accepted_bytes:' .. tenant, 'settled_bytes:' .. tenant)
    local n = (tonumber(v[1]) or 0) - (tonumber(v[6]) or 0)
    for k = 2, 5 do n = n - (tonumber(v[k]) or 0) end
    st = {n, (tonumber(v[7]) or 0) - (tonumber(v[8]) or 0)}
    outstanding[tenant] = st
  end
  return st
end

-- Redis memory grows by what a record holds: for params kept by reference (batchline/objects.py),
-- the key, not the request's size (which quotas and the queued-bytes limits still count)
local mem_bytes = 0
local function over_limit(tenant, size, held)
  if mem_high > 0 and mem_used + mem_bytes + held > mem_high then
    return 'backpressure|memory|' .. (mem_used + mem_bytes) .. '|' .. mem_high .. '|'
  end
  if max_n > 0 and queued_n + 1 > max_n then return 'backpressure|queued_requests|' .. queued_n .. '|' .. max_n .. '|' end
  if max_b > 0 and queued_b + size > max_b then return 'backpressure|queued_bytes|' .. queued_b .. '|' .. max_b .. '|' end
  local lim = limits[tenant]
  if lim then
    local st = tenant_state(tenant)
    if lim[1] >= 0 and st[1] + 1 > lim[1] then
      return 'backpressure|' .. lim[3] .. '|' .. st[1] .. '|' .. lim[1] .. '|' .. tenant
    end
    if lim[2] >= 0 and st[2] + size > lim[2] then
      return 'backpressure|' .. lim[4] .. '|' .. st[2] .. '|' .. lim[2] .. '|' .. tenant
    end
  end
  return nil
end
local checked = {}  -- reply_to -> false (fine) or the reason it is refused, once per chunk

-- include: targets
-- include: pending

local function target_error(rt)
  local key, is_stream = target_key(rt)
  if key == nil then return false end
  if is_stream then return stream_key_error(key, KEYS[5]) or false end
  return queue_key_error(key, KEYS[4], broker_prefix) or false
end

local function register(rt)
  local key, is_stream = target_key(rt)
  if key == nil then return end
  redis.call('SADD', is_stream and KEYS[4] or KEYS[5], key)
end

for i = first, #ARGV, 11 do
  local rid, rt = ARGV[i], ARGV[i + 4]
  local key = prefix .. rid
  local existing = redis.call('HGET', key, R.digest)
  if existing then
    codes[#codes + 1] = (existing == ARGV[i + 6]) and 0 or 2
  else
    local size = tonumber(ARGV[i + 7])
    local held = (string.byte(ARGV[i + 3], 1) == 64) and (#ARGV[i + 3] + #ARGV[i + 5] + 200) or size
    local refused = refused_by or over_limit(ARGV[i + 1], size, held)
    if refused then refused_by = refused end
    if not refused and rt ~= '' then
      if checked[rt] == nil then
        checked[rt] = target_error(rt)
        if not checked[rt] then register(rt) end
      end
      refused = checked[rt]
    end
    if refused then
      codes[#codes + 1] = refused
    else
      redis.call('HSET', key, R.tenant, ARGV[i + 1], R.custom_id, ARGV[i + 2], R.params, ARGV[i + 3],
        R.digest, ARGV[i + 6], R.size, ARGV[i + 7], R.state, 'queued', R.queued_at, now)
      if rt ~= '' then redis.call('HSET', key, R.reply_to, rt) end
      if ARGV[i + 5] ~= '' then redis.call('HSET', key, R.metadata, ARGV[i + 5]) end
      if ARGV[i + 8] ~= '' then redis.call('HSET', key, R.betas, ARGV[i + 8]) end
      if ARGV[i + 9] ~= '0' then
        redis.call('HSET', key, R.deadline, ARGV[i + 9], R.model, ARGV[i + 10])
        redis.call('ZADD', KEYS[8], ARGV[i + 9], rid)
      end
      if string.byte(ARGV[i + 3], 1) == 64 then  -- '@': one more request refers to this object
        local object = string.sub(ARGV[i + 3], 2)
        redis.call('HINCRBY', KEYS[6], object, 1)
        redis.call('ZREM', KEYS[7], object)
      end
      pending_group(accepted, accepted_order, ARGV[i + 1], rid)
      n_accepted = n_accepted + 1
      local tenant = ARGV[i + 1]
      bytes = bytes + size
      mem_bytes = mem_bytes + held
      tenants[tenant] = (tenants[tenant] or 0) + 1
      tenant_bytes[tenant] = (tenant_bytes[tenant] or 0) + size
      queued_n, queued_b = queued_n + 1, queued_b + size
      if limits[tenant] then
        local st = tenant_state(tenant)
        st[1], st[2] = st[1] + 1, st[2] + size
      end
      codes[#codes + 1] = 1
    end
  end
end
if n_accepted > 0 then
  for _, t in ipairs(accepted_order) do
    pending_push(ARGV[3], t, accepted[t], false)
    redis.call('ZADD', KEYS[1], 'NX', now, t)  -- a tenant new to pending: its head is one of these
  end
  redis.call('HINCRBY', KEYS[2], 'pending', n_accepted)
  redis.call('HINCRBY', KEYS[2], 'pending_bytes', bytes)
  for tenant, n in pairs(tenants) do
    redis.call('HINCRBY', KEYS[3], 'accepted:' .. tenant, n)
    redis.call('HINCRBY', KEYS[3], 'accepted_bytes:' .. tenant, tenant_bytes[tenant])
  end
end
return codes
