-- Claim requests of the outbox whose send is due: each one's due time moves to `until` (the sender's
-- lease), so no other sender takes it meanwhile, and a sender that dies leaves it due again then.
-- A request held for the send task the hand-off dispatched for it (KEYS[2]) is that task's to claim
-- before its due time; once the hold runs out (the task lost or late) it is due like any other.
-- Each claimed request's record fields are read in the same step (what its send needs).
-- KEYS[1] the outbox (zset: request id -> next send due, ms), KEYS[2] requests held for a send task
--   (zset: request id -> held until, ms)
-- ARGV[1] now (ms), ARGV[2] until (ms), ARGV[3] at most this many, ARGV[4] request key prefix,
--   ARGV[5] how many record fields to read (n), ARGV[6 .. 5+n] their names, then optional request
--   ids: claim only those of them that are due or held (a delivery task sent for them), else the oldest due.
-- Returns, per claimed request: its id, then its n fields (nil where missing).
local now, untl, limit, prefix, n = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local fields = {}
for i = 1, n do fields[i] = ARGV[5 + i] end
local out = {}
local claimed = 0

local function take(rid)
  redis.call('ZADD', KEYS[1], 'XX', untl, rid)
  redis.call('ZREM', KEYS[2], rid)
  out[#out + 1] = rid
  local rec = redis.call('HMGET', prefix .. rid, unpack(fields))
  for i = 1, n do out[#out + 1] = rec[i] end
  claimed = claimed + 1
end

if #ARGV > 5 + n then
  for i = 6 + n, #ARGV do
    local due = redis.call('ZSCORE', KEYS[1], ARGV[i])
    local held = redis.call('ZSCORE', KEYS[2], ARGV[i])
    if due and (held or tonumber(due) <= now) and claimed < limit then
      take(ARGV[i])
    end
  end
  return out
end
for _, rid in ipairs(redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) do
  take(rid)
end
return out
