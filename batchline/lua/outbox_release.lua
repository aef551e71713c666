-- Release requests held for a send task that could not be dispatched (the broker refused it): each
-- one still held is due now in the outbox, for beat's outbox tick.
-- KEYS[1] the outbox (zset: request id -> next send due, ms), KEYS[2] requests held for a send task
-- ARGV[1] now (ms), then the request ids
-- Returns how many were released.
local released = 0
for i = 2, #ARGV do
  if redis.call('ZREM', KEYS[2], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
    released = released + 1
  end
end
return released
