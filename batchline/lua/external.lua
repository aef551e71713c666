-- Settle sends to external targets (webhook, SQS) of requests in state 'delivering':
--   'D' delivered: the target took it (a 2xx, SQS's ok);
--   'U' undeliverable: refused for good (a 4xx) or retried past the window; kept for `batchline redeliver`;
--   'L' later: a retryable failure; its next send is due at the given time (the try is counted).
--   'S' skip: not tried (its host is down or busy); due again at the given time, no try counted.
-- KEYS[1] counters, KEYS[2] the outbox, KEYS[3] zset of undeliverable requests
-- ARGV[1] request key prefix, ARGV[2] now (ms), ARGV[3] record TTL (s),
-- then 4 fields per request: rid, action, due (ms; for 'L' and 'S'), error ('' for 'D')
-- Returns one code per request: 'ok', or 'gone' when it was no longer delivering (settled elsewhere).
local prefix, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV, 4 do
  local rid, action, due, err = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local key = prefix .. rid
  local rec = redis.call('HMGET', key, R.state, R.tenant, R.outcome)
  if rec[1] ~= 'delivering' then
    redis.call('ZREM', KEYS[2], rid)
    out[#out + 1] = 'gone'
  else
    if action == 'D' then
      redis.call('HSET', key, R.state, 'delivered', R.delivered_at, now)
      redis.call('HINCRBY', key, R.external_tries, 1)
      redis.call('HDEL', key, R.result, R.external_error)
      redis.call('ZREM', KEYS[2], rid)
      redis.call('HINCRBY', KEYS[1], 'delivered:' .. rec[2] .. ':' .. rec[3], 1)
      redis.call('EXPIRE', key, ttl)
    elseif action == 'U' then
      redis.call('HSET', key, R.state, 'undeliverable', R.undeliverable_at, now, R.undeliverable_error, err)
      redis.call('HINCRBY', key, R.external_tries, 1)
      redis.call('HDEL', key, R.external_error)
      redis.call('ZREM', KEYS[2], rid)
      redis.call('ZADD', KEYS[3], now, rid)
      redis.call('HINCRBY', KEYS[1], 'undeliverable:' .. rec[2], 1)
    elseif action == 'L' then
      redis.call('HINCRBY', key, R.external_tries, 1)
      redis.call('HSET', key, R.external_error, err)
      redis.call('ZADD', KEYS[2], due, rid)
    else
      redis.call('ZADD', KEYS[2], due, rid)
    end
    out[#out + 1] = 'ok'
  end
end
return out
