-- Claim requests of the outbox whose send is due: each one's due time moves to `until` (the sender's
-- lease), so no other sender takes it meanwhile, and a sender that dies leaves it due again then.
-- A request held for the send task the hand-off dispatched for it (KEYS[2]) is that task's to claim
-- before its due time; once the hold runs out (the task lost or late) it is due like any other.
-- KEYS[1] the outbox (zset: request id -> next send due, ms), KEYS[2] requests held for a send task
--   (zset: request id -> held until, ms)
-- ARGV[1] now (ms), ARGV[2] until (ms), ARGV[3] at most this many, then optional request ids: claim
--   only those of them that are due or held (a delivery task sent for them), else the oldest due.
-- Returns the claimed request ids.
local now, untl, limit = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local out = {}
if #ARGV > 3 then
  for i = 4, #ARGV do
    local due = redis.call('ZSCORE', KEYS[1], ARGV[i])
    local held = redis.call('ZSCORE', KEYS[2], ARGV[i])
    if due and (held or tonumber(due) <= now) and #out < limit then
      redis.call('ZADD', KEYS[1], 'XX', untl, ARGV[i])
      redis.call('ZREM', KEYS[2], ARGV[i])
      out[#out + 1] = ARGV[i]
    end
  end
  return out
end
for _, rid in ipairs(redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) do
  redis.call('ZADD', KEYS[1], 'XX', untl, rid)
  redis.call('ZREM', KEYS[2], rid)
  out[#out + 1] = rid
end
return out
