--[[
  enqueue: adds jobs to one queue, ready now or delayed until their due time.
  A job with a lane (a group, or a type with limits: includes/lanes.lua) makes the queue a flow
  queue; from then on its ready jobs wait in their lanes, and the default lane is `ready`.
  Input:
    KEYS[1] ready    ZSET  id -> ready score (priority, then FIFO)
    KEYS[2] delayed  ZSET  id -> due time, ms since the epoch
    KEYS[3] prio     HASH  id -> priority, for delayed jobs
    KEYS[4] seq      STRING FIFO sequence
    KEYS[5] notify   LIST  wake-up signals
    KEYS[6] leases   ZSET  id -> lease deadline (an id leased already is not added again)
    KEYS[7] flow     STRING present once the queue has used lanes
    ARGV[1] now_ms (0: Redis TIME); then quads: id, priority, due_ms (0: now), lane ('' default)
  Output: the number of ids added.
]]
--- @include now
--- @include ready_score
--- @include lanes
--- @include wake
local ready, delayed, prio, seq, notify, leases, flow = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local now = now_ms(ARGV[1])
local tag = flow_tag(flow)
local flowing = redis.call('EXISTS', flow) == 1
local added = 0
for i = 2, #ARGV, 4 do
  local id, priority, due, lane = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  if not redis.call('ZSCORE', leases, id) then
    if lane ~= '' then
      flowing = true
    end
    if due > now then
      added = added + redis.call('ZADD', delayed, 'NX', due, id)
      redis.call('HSET', prio, id, priority)
      if lane ~= '' then
        redis.call('HSET', tag .. ':jlane', id, lane)
        mark_flow(tag)
      end
      wake_if_earliest(delayed, notify, id)
    elseif flowing then
      added = added + lane_push(tag, ready, lane, id, ready_score(seq, priority))
    else
      added = added + redis.call('ZADD', ready, 'NX', ready_score(seq, priority), id)
    end
  end
end
if flowing then
  wake_lanes(tag, notify)
else
  wake(ready, notify)
end
return added
