-- Every result line of the batch is settled: ended -> delivered, once. Drops it from the hand-off set
-- and its member list; its record (costs, ids) stays as long as its requests' records.
-- KEYS[1] ended, KEYS[2] batch hash, KEYS[3] batch members
-- ARGV[1] batch id, ARGV[2] now (ms), ARGV[3] lines read, ARGV[4] record TTL (s), ARGV[5] lease owner
-- Returns 1 on success, 0 when the batch was not `ended` or its lease is another's (CAS lost).
if redis.call('HGET', KEYS[2], B.state) ~= 'ended' or not lease_free(KEYS[2], ARGV[5], ARGV[2]) then return 0 end
lease_clear(KEYS[2])
redis.call('HSET', KEYS[2], B.state, 'delivered', B.delivered_at, ARGV[2], B.lines, ARGV[3])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
