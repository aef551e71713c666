-- Included by intake, claim, release, deliver and migrate (see scripts.source). Pending work is kept
-- per tenant, so one tenant's backlog never sits in front of another's (fair share, claim.lua): a
-- list of request ids per tenant, oldest first, at `lists .. tenant`, and a zset of the tenants that
-- have some (`active`; score: queued_at of the head of its list, ms). The stats hash counts them
-- ('pending'; requests canceled while queued are counted out at once and dropped from the lists later).
local function pending_rescore(active, lists, prefix, tenant)
  local head = redis.call('LINDEX', lists .. tenant, 0)
  if not head then
    redis.call('ZREM', active, tenant)
  else
    redis.call('ZADD', active, tonumber(redis.call('HGET', prefix .. head, R.queued_at)) or 0, tenant)
  end
end

-- push `ids` (in their order) to the tail of the tenant's list, or to its head keeping their order
local function pending_push(lists, tenant, ids, at_head)
  local key = lists .. tenant
  if at_head then  -- LPUSH puts its last argument first: push each chunk reversed, the last chunk first
    for j = #ids, 1, -5000 do
      local rev = {}
      for i = j, math.max(1, j - 4999), -1 do rev[#rev + 1] = ids[i] end
      redis.call('LPUSH', key, unpack(rev))
    end
  else
    for j = 1, #ids, 5000 do redis.call('RPUSH', key, unpack(ids, j, math.min(j + 4999, #ids))) end
  end
end

-- group ids by tenant, each group in the order met; `order` lists the tenants as first met
local function pending_group(groups, order, tenant, rid)
  local g = groups[tenant]
  if not g then
    g = {}
    groups[tenant] = g
    order[#order + 1] = tenant
  end
  g[#g + 1] = rid
end
