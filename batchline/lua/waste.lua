-- Count the spend of an answer that was not delivered (a hedge's loser: its request was already
-- delivered by the other path), once per request however often its line is replayed.
-- KEYS[1] cost hash of the day, KEYS[2] set of the days that have a cost hash
-- ARGV[1] request key prefix, ARGV[2] the day, then 5 per answer: rid, tenant, model, micro-dollars,
-- 'rt' for a real-time answer (counted against the tenant's real-time budget too) or 'batch' 
-- Returns how many were counted now.
local n = 0
for i = 3, #ARGV, 5 do
  local key = ARGV[1] .. ARGV[i]
  if redis.call('EXISTS', key) == 1 and redis.call('HSETNX', key, R.wasted, ARGV[i + 3]) == 1 then
    local group = ARGV[i + 1] .. '|' .. ARGV[i + 2]
    redis.call('HINCRBY', KEYS[1], group .. '|wasted', tonumber(ARGV[i + 3]))
    redis.call('HINCRBY', KEYS[1], group .. '|wasted_requests', 1)
    if ARGV[i + 4] == 'rt' then redis.call('HINCRBY', KEYS[1], group .. '|wasted_realtime', tonumber(ARGV[i + 3])) end
    redis.call('SADD', KEYS[2], ARGV[2])
    n = n + 1
  end
end
return n
