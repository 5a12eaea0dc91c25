--[[
  promote: moves due delayed jobs to the ready set (a flow queue: to their lanes), at most `limit`
  per call so a burst of due jobs never blocks Redis for long.
  Input: KEYS[1] ready, KEYS[2] delayed, KEYS[3] prio, KEYS[4] seq, KEYS[5] notify, KEYS[6] flow;
    ARGV[1] now_ms (0: Redis TIME), ARGV[2] limit
  Output: { {ids promoted}, ms until the next due job (-1: none) }
]]
--- @include now
--- @include ready_score
--- @include lanes
--- @include promote
--- @include wake
--- @include next_due
local ready, delayed, prio, seq, notify, flow = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now = now_ms(ARGV[1])
local tag = nil
if redis.call('EXISTS', flow) == 1 then
  tag = flow_tag(flow)
end
local moved = promote(ready, delayed, prio, seq, now, tonumber(ARGV[2]), tag)
if #moved > 0 then
  if tag then
    if redis.call('ZCARD', ready) > 0 then
      join_turns(tag, '')
    end
    wake_lanes(tag, notify)
  else
    wake(ready, notify)
  end
end
return { moved, next_due(delayed, now) }
