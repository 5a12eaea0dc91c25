--[[
  renew: extends the leases a worker still owns; reports those it lost (reclaimed, or taken by
  another worker), so the worker can cancel those attempts instead of finishing them.
  Input: KEYS[1] leases, KEYS[2] tokens; ARGV[1] token, ARGV[2] ttl ms, ARGV[3..] ids
  Output: the ids whose lease is no longer this worker's.
]]
--- @include now
local leases, tokens = KEYS[1], KEYS[2]
local token, ttl = ARGV[1], tonumber(ARGV[2])
local deadline = now_ms() + ttl
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', tokens, id) == token then
    redis.call('ZADD', leases, deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
