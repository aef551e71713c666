-- The provider says the batch ended: submitted -> ended, once. The caller that gets 1 hands the
-- batch to a result worker; every other caller (a second poller) gets 0 and does nothing. The hand-off
-- is a lease (owner ARGV[5], a `handoff:` token a collector takes over) until ARGV[6].
-- KEYS[1] open, KEYS[2] ended, KEYS[3] stats, KEYS[4] batch hash
-- ARGV[1] batch id, ARGV[2] now (ms), ARGV[3] request counts (JSON), ARGV[4] provider ended_at,
-- ARGV[5] hand-off owner, ARGV[6] hand-off lease expiry (ms)
if redis.call('HGET', KEYS[4], B.state) ~= 'submitted' then return 0 end
local n = tonumber(redis.call('HGET', KEYS[4], B.n) or '0')
redis.call('HSET', KEYS[4], B.state, 'ended', B.ended_at, ARGV[2], B.counts, ARGV[3],
  B.provider_ended_at, ARGV[4])
lease_set(KEYS[4], ARGV[5], ARGV[6])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'in_flight', -n)
return 1
