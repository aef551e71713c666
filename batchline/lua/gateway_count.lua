-- Count the final outcomes of one gateway client batch from its result stream, incrementally: each
-- stream entry is read once (a cursor in the batch hash), so a retrieve costs what arrived since.
-- Only entries of this tenant whose custom_id carries this batch's prefix count (deliver.lua appends
-- each final outcome exactly once). When every request has its outcome, the batch is ended.
-- KEYS[1] gateway batch hash, KEYS[2] its result stream, KEYS[3] its custom_id map
-- ARGV[1] tenant, ARGV[2] custom_id prefix, ARGV[3] entries per call, ARGV[4] now (ms), ARGV[5] TTL once ended (s)
-- Returns {entries read, outcomes counted so far, requests in the batch}.
local meta = KEYS[1]
local cursor = redis.call('HGET', meta, 'cursor') or '0-0'
local n = tonumber(redis.call('HGET', meta, 'n') or '0')
local prefix = ARGV[2]
local entries = redis.call('XRANGE', KEYS[2], '(' .. cursor, '+', 'COUNT', ARGV[3])
for _, entry in ipairs(entries) do
  local f = entry[2]
  local tenant, cid, outcome
  for j = 1, #f, 2 do
    if f[j] == 'tenant' then tenant = f[j + 1]
    elseif f[j] == 'custom_id' then cid = f[j + 1]
    elseif f[j] == 'outcome' then outcome = f[j + 1] end
  end
  if tenant == ARGV[1] and cid and outcome and string.sub(cid, 1, #prefix) == prefix then
    redis.call('HINCRBY', meta, 'c:' .. outcome, 1)
  end
  cursor = entry[1]
end
if #entries > 0 then redis.call('HSET', meta, 'cursor', cursor) end
local counted = 0
for _, o in ipairs({'succeeded', 'errored', 'canceled', 'expired'}) do
  counted = counted + tonumber(redis.call('HGET', meta, 'c:' .. o) or '0')
end
if n > 0 and counted >= n and redis.call('HGET', meta, 'intake') == 'done' and redis.call('HSETNX', meta, 'ended_at', ARGV[4]) == 1 then
  local ttl = tonumber(ARGV[5])
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ttl) end
end
return {#entries, counted, n}
