--[[
  reclaim: removes up to `limit` leases whose deadline has passed (the worker died, hung or lost
  Redis) and returns their ids with the id of the worker that held them; the caller lets each job's row decide.
  Input: KEYS[1] leases, KEYS[2] owners; ARGV[1] now_ms (0: Redis TIME), ARGV[2] limit
  Output: flat pairs: id, worker id
]]
--- @include now
local leases, owners = KEYS[1], KEYS[2]
local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now_ms(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(expired) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', owners, id) or ''
  redis.call('ZREM', leases, id)
  redis.call('HDEL', owners, id)
end
return out
