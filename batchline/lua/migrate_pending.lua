-- Move requests from the one pending list of batchline 0.1 (`{prefix}:pending`, every tenant in one
-- FIFO) into the per-tenant lists, a chunk per call, in order; run by a worker at start until none
-- is left. Entries no longer queued are dropped, as claim.lua would have done.
-- KEYS[1] the old list, KEYS[2] tenants with pending work, KEYS[3] stats
-- ARGV[1] request key prefix, ARGV[2] pending list prefix, ARGV[3] entries per call
-- Returns {moved, left in the old list}.
-- include: pending
local ids = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
local groups, order, moved = {}, {}, 0
for _, rid in ipairs(ids) do
  local rec = redis.call('HMGET', ARGV[1] .. rid, R.state, R.tenant)
  if rec[1] == 'queued' then
    pending_group(groups, order, rec[2] or '', rid)
    moved = moved + 1
  end
end
for _, t in ipairs(order) do
  pending_push(ARGV[2], t, groups[t], false)
  pending_rescore(KEYS[2], ARGV[2], ARGV[1], t)
end
if #ids > 0 then redis.call('LTRIM', KEYS[1], #ids, -1) end
-- 0.1 kept no count: the lists are its census (what the old list held that was still queued)
redis.call('HINCRBY', KEYS[3], 'pending', moved)
return {moved, redis.call('LLEN', KEYS[1])}
