--[[
  remove: takes waiting jobs out of the ready and delayed sets (cancelled, deleted, or orphans).
  Leases are left alone: a running job is stopped through its row, and its worker settles it.
  Input: KEYS[1] ready, KEYS[2] delayed, KEYS[3] prio; ARGV ids
  Output: the number of entries removed.
]]
local ready, delayed, prio = KEYS[1], KEYS[2], KEYS[3]
local removed = 0
for _, id in ipairs(ARGV) do
  removed = removed + redis.call('ZREM', ready, id) + redis.call('ZREM', delayed, id)
  redis.call('HDEL', prio, id)
end
return removed
