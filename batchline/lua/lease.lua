-- Take or renew a lease: succeeds when the caller holds it, nobody does, it expired, or its owner
-- starts with the take-over prefix (a hand-off waiting for its collector).
-- KEYS[1] the hash holding the lease, KEYS[2] a zset indexing leases by expiry
-- ARGV[1] owner, ARGV[2] now (ms), ARGV[3] expiry (ms), ARGV[4] state the hash must be in ('' any),
-- ARGV[5] take-over prefix ('' none), ARGV[6] member of KEYS[2] to index it by ('' none),
-- ARGV[7] '1': the key itself expires with the lease (a lease with nothing else in its hash)
-- Returns 1 when the caller holds the lease now, 0 when another does.
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], B.state) ~= ARGV[4] then return 0 end
if not lease_free(KEYS[1], ARGV[1], ARGV[2]) then
  local holder = redis.call('HGET', KEYS[1], B.lease_owner) or ''
  if ARGV[5] == '' or string.sub(holder, 1, #ARGV[5]) ~= ARGV[5] then return 0 end
end
lease_set(KEYS[1], ARGV[1], ARGV[3])
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[6]) end
if ARGV[7] == '1' then redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(ARGV[3]) - tonumber(ARGV[2]))) end
return 1
