-- Record the intent to create: claimed -> creating, lease extended over the create call.
-- KEYS[1] leases, KEYS[2] batch hash; ARGV[1] batch id, ARGV[2] now (ms), ARGV[3] lease expiry (ms)
if redis.call('HGET', KEYS[2], B.state) ~= 'claimed' then return 0 end
redis.call('HSET', KEYS[2], B.state, 'creating', B.intent_at, ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
