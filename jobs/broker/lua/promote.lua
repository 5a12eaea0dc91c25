--[[
  promote: moves due delayed jobs to the ready set, at most `limit` per call so a burst of due
  jobs never blocks Redis for long.
  Input: KEYS[1] ready, KEYS[2] delayed, KEYS[3] prio, KEYS[4] seq, KEYS[5] notify;
    ARGV[1] now_ms (0: Redis TIME), ARGV[2] limit
  Output: { {ids promoted}, ms until the next due job (-1: none) }
]]
--- @include now
--- @include ready_score
--- @include promote
--- @include wake
--- @include next_due
local ready, delayed, prio, seq, notify = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = now_ms(ARGV[1])
local moved = promote(ready, delayed, prio, seq, now, tonumber(ARGV[2]))
if #moved > 0 then
  wake(ready, notify)
end
return { moved, next_due(delayed, now) }
