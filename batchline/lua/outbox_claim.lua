-- Claim requests of the outbox whose send is due: each one's due time moves to `until` (the sender's
-- lease), so no other sender takes it meanwhile, and a sender that dies leaves it due again then.
-- KEYS[1] the outbox (zset: request id -> next send due, ms)
-- ARGV[1] now (ms), ARGV[2] until (ms), ARGV[3] at most this many, then optional request ids: claim
--   only those of them that are due (a delivery task sent for them), else the oldest due.
-- Returns the claimed request ids.
local now, untl, limit = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local out = {}
if #ARGV > 3 then
  for i = 4, #ARGV do
    local due = redis.call('ZSCORE', KEYS[1], ARGV[i])
    if due and tonumber(due) <= now and #out < limit then
      redis.call('ZADD', KEYS[1], 'XX', untl, ARGV[i])
      out[#out + 1] = ARGV[i]
    end
  end
  return out
end
for _, rid in ipairs(redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) do
  redis.call('ZADD', KEYS[1], 'XX', untl, rid)
  out[#out + 1] = rid
end
return out
