--[[
  renew: extends the leases a worker still owns; reports those it lost (reclaimed, or taken by
  another worker), so the worker can cancel those attempts instead of finishing them.
  Input: KEYS[1] leases, KEYS[2] owners; ARGV[1] now_ms (0: Redis TIME), ARGV[2] worker id,
    ARGV[3] ttl ms, ARGV[4..] ids
  Output: the ids whose lease is no longer this worker's.
]]
--- @include now
local leases, owners = KEYS[1], KEYS[2]
local worker_id, ttl = ARGV[2], tonumber(ARGV[3])
local deadline = now_ms(ARGV[1]) + ttl
local lost = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', owners, id) == worker_id then
    redis.call('ZADD', leases, deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
