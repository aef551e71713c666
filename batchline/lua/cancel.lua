-- Cancel requests by id. A queued one leaves the queue now for the cancel batch (`canceled`, which
-- never reaches the provider): a worker delivers its one `canceled` outcome (workers/cancels.py, through
-- deliver.lua: reply target, counters, TTL). One in a batch is flagged, reported `canceled` when its
-- batch's results come back (or when the batch is released), and counted on its batch so the poller
-- cancels the provider batch once all its requests are canceled.
-- KEYS[1] stats, KEYS[2] counters, KEYS[3] the cancel batch's member list, KEYS[4] 0.1's one
-- pending list (its entries are not in the pending count until migrate_pending.lua moves them)
-- ARGV[1] request key prefix, ARGV[2] batch key prefix, ARGV[3] now (ms), ARGV[4] record TTL (s),
-- ARGV[5] history entry, ARGV[6..] request ids
-- Returns one code per id: 'removed', 'requested', 'final' (already settled), 'unknown'.
local prefix, bprefix, now, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
local legacy = redis.call('LLEN', KEYS[4]) > 0
for i = 6, #ARGV do
  local key = prefix .. ARGV[i]
  local rec = redis.call('HMGET', key, R.state, R.batch, R.size, R.cancel, R.history, R.tenant)
  local history = rec[5] and (rec[5] .. '\n' .. ARGV[5]) or ARGV[5]
  if not rec[1] then
    out[#out + 1] = 'unknown'
  elseif rec[1] == 'queued' then
    -- no LREM (O(N) on a long list): claim.lua drops entries that are no longer queued as it passes
    -- a request a 0.1 producer queued and no worker has moved yet is not counted: leave the count
    -- (that list lives only during an upgrade and is emptied at every pack, so the scan is short)
    if not (legacy and redis.call('LPOS', KEYS[4], ARGV[i], 'MAXLEN', 100000)) then
      redis.call('HINCRBY', KEYS[1], 'pending', -1)
    end
    redis.call('HINCRBY', KEYS[1], 'pending_bytes', -tonumber(rec[3] or '0'))
    -- admission control: its bytes are no longer held (z 0: its delivery does not count them again)
    redis.call('HINCRBY', KEYS[2], 'settled_bytes:' .. rec[6], tonumber(rec[3] or '0'))
    redis.call('HSET', key, R.state, 'batched', R.batch, 'canceled', R.cancel, '1', R.history, history, R.size, '0')
    redis.call('RPUSH', KEYS[3], ARGV[i])
    out[#out + 1] = 'removed'
  elseif (rec[1] == 'batched' or rec[1] == 'submitted' or rec[1] == 'ended') and not rec[4] then
    redis.call('HSET', key, R.cancel, '1', R.history, history)
    redis.call('HINCRBY', bprefix .. rec[2], 'cancels', 1)
    out[#out + 1] = 'requested'
  elseif rec[4] and rec[1] ~= 'delivered' then
    out[#out + 1] = 'requested'
  else
    out[#out + 1] = 'final'
  end
end
return out
