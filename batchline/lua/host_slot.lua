-- Take one of a webhook host's send slots (the per-host bound, BATCHLINE_WEBHOOK_MAX_CONCURRENCY),
-- across every worker process. A slot is a token with an expiry: a sender that dies frees it then.
-- KEYS[1] the host's slots (zset: token -> until, ms)
-- ARGV[1] now (ms), ARGV[2] until (ms), ARGV[3] the bound, ARGV[4] the token
-- Returns 1 when taken, 0 when the host has its bound of sends in flight.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
return 1
