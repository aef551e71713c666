-- A request of a gateway client batch that was canceled while still queued gets no delivery (cancel.lua
-- ends it at once), so its outcome is appended to the batch's result stream here, once per request
-- (the record's 'gx' flag): running this again after a crash appends nothing twice.
-- KEYS[1] the batch's result stream
-- ARGV[1] request key prefix, ARGV[2] tenant, then pairs: request id, custom_id (batchline's)
-- Returns how many outcomes were appended.
local added = 0
for i = 3, #ARGV, 2 do
  local key = ARGV[1] .. ARGV[i]
  local rec = redis.call('HMGET', key, 's', 'gx', 't')
  if rec[1] == 'canceled' and not rec[2] and rec[3] == ARGV[2] then
    redis.call('HSET', key, 'gx', '1')
    redis.call('XADD', KEYS[1], '*', 'custom_id', ARGV[i + 1], 'tenant', ARGV[2], 'outcome', 'canceled',
      's3_key', '', 'batch_id', '', 'result', '{"type":"canceled"}')
    added = added + 1
  end
end
return added
