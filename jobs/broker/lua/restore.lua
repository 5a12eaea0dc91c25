--[[
  restore: the reconciler's write. Puts back what the database says should be in Redis, without
  disturbing what is there: waiting jobs into ready or delayed (or their lanes), running jobs as
  fresh leases that also hold their concurrency slots, so running rows count against the limits.
  Input:
    KEYS[1] ready, KEYS[2] delayed, KEYS[3] prio, KEYS[4] seq, KEYS[5] notify, KEYS[6] leases, KEYS[7] owners,
    KEYS[8] flow
    ARGV[1] now_ms (0: Redis TIME), ARGV[2] lease ttl ms, ARGV[3] '1' when the queue has limits (it becomes a
      flow queue before any job is back, so none runs unchecked); then quints: id, kind ('ready' | 'delayed' | 'lease'),
      priority or worker id, due_ms, lane ('' default)
  Output: the number of entries created.
]]
--- @include now
--- @include ready_score
--- @include lanes
--- @include wake
local ready, delayed, prio, seq, notify, leases, owners, flow =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local now = now_ms(ARGV[1])
local ttl = tonumber(ARGV[2])
local tag = flow_tag(flow)
if ARGV[3] == '1' then
  mark_flow(tag)
end
local created = 0
for i = 4, #ARGV, 5 do
  local id, kind, extra, due, lane = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4]
  if lane ~= '' then
    mark_flow(tag)
  end
  local flowing = redis.call('EXISTS', flow) == 1
  local leased = redis.call('ZSCORE', leases, id)
  local queued = redis.call('ZSCORE', ready, id) or redis.call('ZSCORE', delayed, id)
  if not queued and lane ~= '' then
    queued = redis.call('ZSCORE', lane_key(tag, lane, ready), id)
  end
  if kind == 'lease' then
    if not leased then
      redis.call('ZADD', leases, now + ttl, id)
      redis.call('HSET', owners, id, extra)
      if flowing then
        if lane ~= '' then
          redis.call('HSET', tag .. ':jlane', id, lane)
        end
        hold_slots(tag, lane, id, now + ttl)
      end
      created = created + 1
    end
  elseif not leased and not queued then
    if kind == 'delayed' and due > now then
      redis.call('ZADD', delayed, due, id)
      redis.call('HSET', prio, id, extra)
      if lane ~= '' then
        redis.call('HSET', tag .. ':jlane', id, lane)
      end
    elseif flowing then
      lane_push(tag, ready, lane, id, ready_score(seq, extra))
    else
      redis.call('ZADD', ready, ready_score(seq, extra), id)
    end
    created = created + 1
  end
end
if redis.call('EXISTS', flow) == 1 then
  wake_lanes(tag, notify)
else
  wake(ready, notify)
end
return created
