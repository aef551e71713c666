-- `batchline redeliver`: settle undeliverable requests whose target now takes them.
-- KEYS[1] counters, KEYS[2] zset of undeliverable requests, KEYS[3] set of Celery queues named by
-- reply targets, KEYS[4] the outbox (webhook and SQS targets)
-- ARGV[1] request key prefix, ARGV[2] now (ms), ARGV[3] history entry, ARGV[4] reply stream MAXLEN (0: none),
-- then 2 fields per request: rid, mode
--   'stream': check the stream key and append the stored outcome to it, in this step;
--   'sent': its Celery task was just sent; 'outbox': a webhook or SQS target, back to 'delivering' and
--   due now (a fresh retry window); anything else is an error: still undeliverable, record why.
-- Returns one entry per request: 'delivered', 'delivering', 'gone' (no longer undeliverable) or the error.
local prefix, now, entry, maxlen = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
-- include: targets

for i = 5, #ARGV, 2 do
  local rid, mode = ARGV[i], ARGV[i + 1]
  local key = prefix .. rid
  local rec = redis.call('HMGET', key, 's', 'rt', 'c', 't', 'o', 'k', 'b', 'res', 'h')
  if rec[1] ~= 'undeliverable' then
    redis.call('ZREM', KEYS[2], rid)
    out[#out + 1] = 'gone'
  else
    local err = nil
    if mode == 'outbox' then
      redis.call('HSET', key, 's', 'delivering', R.external_since, now, R.external_tries, 0,
        'h', rec[9] and (rec[9] .. '\n' .. entry) or entry)
      redis.call('HDEL', key, 'ue')
      redis.call('ZREM', KEYS[2], rid)
      redis.call('ZADD', KEYS[4], now, rid)
      out[#out + 1] = 'delivering'
    elseif mode == 'stream' then
      local stream = target_key(rec[2])
      err = stream_key_error(stream, KEYS[3])
      if not err then
        local added = reply_append(stream, maxlen, {'custom_id', rec[3], 'tenant', rec[4], 'outcome', rec[5],
          's3_key', rec[6] or '', 'batch_id', rec[7] or '', 'result', rec[8] or ''})
        if type(added) == 'table' and added.err then err = 'redis-stream:' .. stream .. ': ' .. added.err end
      end
    elseif mode ~= 'sent' then
      err = mode
    end
    if mode == 'outbox' then
      -- settled by the delivery tasks
    elseif err then
      redis.call('HSET', key, 'ue', err)
      out[#out + 1] = err
    else
      redis.call('HSET', key, 's', 'delivered', 'dl', now, 'h', rec[9] and (rec[9] .. '\n' .. entry) or entry)
      redis.call('HDEL', key, 'ue', 'res', 'ns')
      redis.call('ZREM', KEYS[2], rid)
      redis.call('HINCRBY', KEYS[1], 'delivered:' .. rec[4] .. ':' .. rec[5], 1)
      out[#out + 1] = 'delivered'
    end
  end
end
return out
