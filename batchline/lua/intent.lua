-- Record the intent to create: claimed -> creating, by the lease's holder, lease extended over the create.
-- KEYS[1] leases, KEYS[2] batch hash; ARGV[1] batch id, ARGV[2] now (ms), ARGV[3] lease expiry (ms),
-- ARGV[4] lease owner
if redis.call('HGET', KEYS[2], B.state) ~= 'claimed' or not lease_free(KEYS[2], ARGV[4], ARGV[2]) then return 0 end
lease_set(KEYS[2], ARGV[4], ARGV[3])
redis.call('HSET', KEYS[2], B.state, 'creating', B.intent_at, ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
