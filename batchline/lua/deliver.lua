-- Mark a chunk of results delivered, appending each to its Redis stream in the same atomic step,
-- so a stream target receives every outcome exactly once however often a chunk is replayed.
-- KEYS: none fixed (streams are named per request; single-node Redis)
-- ARGV[1] request key prefix, ARGV[2] batch id, ARGV[3] now (ms), ARGV[4] record TTL (s),
-- then 8 fields per result: rid, outcome, s3_key, stream ('' for none), custom_id, tenant,
--   result_json, error_type
-- Returns the number newly delivered.
local prefix, bid, now, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local delivered = 0
for i = 5, #ARGV, 8 do
  local key = prefix .. ARGV[i]
  local rec = redis.call('HMGET', key, 's', 'b')
  if (rec[1] == 'submitted' or rec[1] == 'ended') and rec[2] == bid then
    local stream = ARGV[i + 3]
    if stream ~= '' then
      redis.call('XADD', stream, '*', 'custom_id', ARGV[i + 4], 'tenant', ARGV[i + 5],
        'outcome', ARGV[i + 1], 's3_key', ARGV[i + 2], 'batch_id', bid, 'result', ARGV[i + 6])
    end
    redis.call('HSET', key, 's', 'delivered', 'o', ARGV[i + 1], 'k', ARGV[i + 2], 'dl', now,
      'e', ARGV[i + 7])
    redis.call('HDEL', key, 'p')
    redis.call('EXPIRE', key, ttl)
    delivered = delivered + 1
  end
end
return delivered
