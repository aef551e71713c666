-- Atomically move up to N pending requests (cut at a byte budget) into a new claimed batch, shared
-- across the tenants that have pending work by weight (fair share).
-- KEYS[1] tenants with pending work (zset), KEYS[2] stats, KEYS[3] leases, KEYS[4] batches,
-- KEYS[5] batch hash, KEYS[6] batch members, KEYS[7] the tenant registry (name -> settings JSON)
-- ARGV[1] request key prefix, ARGV[2] batch id, ARGV[3] max requests, ARGV[4] max bytes,
-- ARGV[5] now (ms), ARGV[6] lease expiry (ms), ARGV[7] lease owner, ARGV[8] pending list prefix
-- Returns {rid1, params1, rid2, params2, ...} of the claimed requests (empty when none).
--
-- Fill by rounds (deficit round robin without carry-over): each round offers every tenant still
-- holding work `weight * base` requests from the head of its list, `base` being an eighth of the
-- batch (estimated by count and by bytes) over the weights' sum. A tenant with less than its share
-- takes what it has and drops out; the others fill the rest in further rounds. So a tenant with 50
-- requests beside one with 100,000 has all 50 in this batch, and two backlogged tenants split it by
-- weight. A tenant whose next request does not fit in the bytes left is done for this batch; the
-- others go on filling it. The tenant a round starts with rotates from one claim to the next (ties,
-- beta sets): by the number of tenants that took something when not all did, so with more tenants
-- waiting than one batch can take they take turns (round robin over claims), else by one. Up to
-- 5,000 tenants are weighed per claim, those whose oldest request waited longest.
-- A batch carries one beta set (its anthropic-beta header): that of the first queued request met.
-- Requests of other beta sets stay at the head of their list, in order, for a later batch; a tenant
-- whose window holds only those is done for this batch.
-- include: pending

local prefix, bid = ARGV[1], ARGV[2]
local max_n, max_bytes, lists = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[8]
local tenants = redis.call('ZRANGE', KEYS[1], 0, 4999)
if #tenants == 0 then
  -- nothing waits in the per-tenant lists, so nothing is counted: heals a count that a release
  -- mixing 0.1 and this version left off (a 0.1 cancel of a moved request lowers no count)
  redis.call('HSET', KEYS[2], 'pending', 0)
  return {}
end
if max_n <= 0 then return {} end
table.sort(tenants)
local start = tonumber(redis.call('HGET', KEYS[2], 'fair_turn') or '0') % #tenants
local order, weights, sum_w = {}, {}, 0
for i = 1, #tenants do order[i] = tenants[((start + i - 1) % #tenants) + 1] end
for j = 1, #order, 1000 do
  local regs = redis.call('HMGET', KEYS[7], unpack(order, j, math.min(j + 999, #order)))
  for i = 1, #regs do
    local t, w = order[j + i - 1], 1
    if regs[i] then
      local ok, d = pcall(cjson.decode, regs[i])
      if ok and type(d) == 'table' and tonumber(d.weight) and tonumber(d.weight) > 0 then w = tonumber(d.weight) end
    end
    weights[t] = w
    sum_w = sum_w + w
  end
end
local st = redis.call('HMGET', KEYS[2], 'pending', 'pending_bytes')
local pn, pb, est = tonumber(st[1]) or 0, tonumber(st[2]) or 0, max_n
if pn > 0 and pb > 0 then est = math.max(1, math.min(max_n, math.floor(max_bytes * pn / pb))) end
local base = math.max(1, math.ceil(est / (8 * sum_w)))

local out, taken, bytes, full = {}, {}, 0, false
-- list entries looked at by one claim, whatever they turn out to be (canceled, another beta set):
-- bounded by the batch's size, not by the lists' lengths (a list of canceled entries is walked over
-- several claims, never in one)
local scanned, scan_max = 0, math.max(2 * max_n, 20000)
local betas = nil
local pos, other, live, n_live = {}, {}, {}, #order
local took_any, n_takers = {}, 0
for _, t in ipairs(order) do pos[t], other[t], live[t] = 0, {}, true end
while not full and n_live > 0 do
  for _, t in ipairs(order) do
    if live[t] and not full then
      local q = math.min(math.max(1, math.floor(weights[t] * base + 0.5)), max_n - #taken)
      local ids = redis.call('LRANGE', lists .. t, pos[t], pos[t] + q - 1)
      local took, skipped, no_room = 0, false, false
      for _, rid in ipairs(ids) do
        local key = prefix .. rid
        local rec = redis.call('HMGET', key, R.state, R.size, R.params, R.betas)
        if rec[1] == 'queued' then
          local bt = rec[4] or ''
          if betas == nil then betas = bt end
          if bt ~= betas then
            other[t][#other[t] + 1] = rid
            skipped = true
          else
            local z = tonumber(rec[2])
            -- its next request does not fit: this tenant is done for this batch, the others go on
            if #taken > 0 and bytes + z > max_bytes then no_room = true break end
            taken[#taken + 1] = rid
            took = took + 1
            bytes = bytes + z
            redis.call('HSET', key, R.state, 'batched', R.batch, bid)
            out[#out + 1] = rid
            out[#out + 1] = rec[3]
          end
        end
        -- entries that are no longer queued (canceled, gone) are dropped from the list as we pass them
        pos[t] = pos[t] + 1
        scanned = scanned + 1
        if #taken >= max_n or scanned >= scan_max then full = true break end
      end
      if took > 0 and not took_any[t] then took_any[t], n_takers = true, n_takers + 1 end
      if no_room or #ids < q or (took == 0 and skipped) then
        live[t] = false
        n_live = n_live - 1
      end
    end
  end
end
redis.call('HINCRBY', KEYS[2], 'fair_turn', (n_takers > 0 and n_takers < #order) and n_takers or 1)
for _, t in ipairs(order) do
  if pos[t] > 0 then redis.call('LTRIM', lists .. t, pos[t], -1) end
  if #other[t] > 0 then pending_push(lists, t, other[t], true) end
  if pos[t] > 0 or not live[t] then pending_rescore(KEYS[1], lists, prefix, t) end
end
if #taken == 0 then return out end
if betas ~= '' then redis.call('HSET', KEYS[5], B.betas, betas) end
for i = 1, #taken, 5000 do
  redis.call('RPUSH', KEYS[6], unpack(taken, i, math.min(i + 4999, #taken)))
end
redis.call('HSET', KEYS[5], B.state, 'claimed', B.n, #taken, B.bytes, bytes, B.claimed_at, ARGV[5])
lease_set(KEYS[5], ARGV[7], ARGV[6])
redis.call('HINCRBY', KEYS[2], 'in_flight', #taken)
redis.call('HINCRBY', KEYS[2], 'pending', -#taken)
redis.call('HINCRBY', KEYS[2], 'pending_bytes', -bytes)
redis.call('ZADD', KEYS[3], ARGV[6], bid)
redis.call('ZADD', KEYS[4], ARGV[5], bid)
return out
