-- A lease is an owner token and an expiry (ms, Redis server time) in the hash that holds it.
-- free(key, owner, now): may `owner` act on it? It holds the lease, or nobody does (none, or expired).
local function lease_free(key, owner, now)
  local l = redis.call('HMGET', key, B.lease_owner, B.lease_until)
  return (not l[1]) or l[1] == owner or tonumber(l[2] or '0') <= tonumber(now)
end
local function lease_set(key, owner, expiry) redis.call('HSET', key, B.lease_owner, owner, B.lease_until, expiry) end
local function lease_clear(key) redis.call('HDEL', key, B.lease_owner, B.lease_until) end
