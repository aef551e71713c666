-- Take params objects to delete: those no request not yet final has referred to since before a cutoff.
-- KEYS[1] params refs (object key -> requests not yet final that refer to it), KEYS[2] params to delete (zset)
-- ARGV[1] cutoff (ms), ARGV[2] at most this many
-- Returns the object keys to delete now; each is off the zset (one referred to again is only dropped).
local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, object in ipairs(due) do
  redis.call('ZREM', KEYS[2], object)
  if (tonumber(redis.call('HGET', KEYS[1], object)) or 0) <= 0 then out[#out + 1] = object end
end
return out
