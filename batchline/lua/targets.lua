-- Included by intake, deliver and redeliver (see scripts.source): why a reply target's key cannot be
-- written, or nil. `queues` is the set of Celery queues named by reply targets, `streams` the set of
-- reply stream names: a name is only ever one of the two, and never a key of another type.
-- Every key built here is in the scripts' slot in cluster mode: a reply stream carries the key prefix's
-- hash tag (batchline/requests.py), so does the binding key built from it, and a queue's list carries
-- the broker prefix, which starts with the key prefix.
local function stream_key_error(stream, queues)
  if redis.call('SISMEMBER', queues, stream) == 1 or redis.call('EXISTS', '_kombu.binding.' .. stream) == 1 then
    return 'redis-stream:' .. stream .. ': the key is a Celery queue'
  end
  local kind = redis.call('TYPE', stream).ok
  if kind ~= 'none' and kind ~= 'stream' then
    return 'redis-stream:' .. stream .. ': the key holds a ' .. kind .. ', not a stream'
  end
  return nil
end

-- (`broker_prefix`: kombu's global_keyprefix, '' but in cluster mode: the queue's list is broker_prefix .. queue)
local function queue_key_error(queue, streams, broker_prefix)
  if redis.call('SISMEMBER', streams, queue) == 1 then return 'celery queue ' .. queue .. ': the name is a reply stream' end
  local kind = redis.call('TYPE', broker_prefix .. queue).ok
  if kind ~= 'none' and kind ~= 'list' then
    return 'celery queue ' .. queue .. ': the key holds a ' .. kind .. ', not a Celery queue'
  end
  return nil
end

-- Append one outcome to a reply stream (trimmed to about `maxlen` entries when > 0); errors are returned.
local function reply_append(stream, maxlen, fields)
  if maxlen > 0 then
    return redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  end
  return redis.pcall('XADD', stream, '*', unpack(fields))
end

-- The key a reply_to ('redis-stream:NAME' or 'celery:TASK[@QUEUE]') writes, and whether it is a stream;
-- nil for a target outside Redis (a webhook URL, 'sqs:QUEUE'), which writes no key.
local function target_key(rt)
  if string.match(rt, '^https?://') or string.match(rt, '^sqs:') then return nil, false end
  local stream = string.match(rt, '^redis%-stream:(.+)$')
  if stream then return stream, true end
  return string.match(rt, '^celery:[^@]*@(.+)$') or 'celery', false
end
