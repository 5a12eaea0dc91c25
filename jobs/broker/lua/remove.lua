--[[
  remove: takes waiting jobs out of the ready and delayed sets, or their lanes (cancelled, deleted,
  or orphans). Leases are left alone: a running job is stopped through its row, and its worker
  settles it.
  Input: KEYS[1] ready, KEYS[2] delayed, KEYS[3] prio, KEYS[4] flow; ARGV ids
  Output: the number of entries removed.
]]
--- @include lanes
local ready, delayed, prio, flow = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tag = nil
if redis.call('EXISTS', flow) == 1 then
  tag = flow_tag(flow)
end
local removed = 0
for _, id in ipairs(ARGV) do
  removed = removed + redis.call('ZREM', ready, id) + redis.call('ZREM', delayed, id)
  redis.call('HDEL', prio, id)
  if tag then
    local lane = lane_of(tag, id)
    if lane ~= '' then
      removed = removed + redis.call('ZREM', lane_key(tag, lane, ready), id)
      if redis.call('ZSCORE', tag .. ':leases', id) == false then
        redis.call('HDEL', tag .. ':jlane', id)
      end
    end
  end
end
return removed
