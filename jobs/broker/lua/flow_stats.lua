--[[
  flow_stats: a read for operators (the API's queue statistics, the dashboard, the admin, the
  metrics): a queue's depths and what flow control holds back now, in one call. Changes nothing.
  Every lane is counted once (includes/lanes.lua: a lane that holds jobs is in `lanes`, `parked` or
  a `blocked` set), up to ARGV[2] lanes in all; past that the answer says it is cut short.
  Input:
    KEYS[1] ready, KEYS[2] delayed, KEYS[3] leases, KEYS[4] paused, KEYS[5] flow
    ARGV[1] now_ms (0: Redis TIME), ARGV[2] the most lanes to count, ARGV[3] the most leases to read
  Output: { flow (0/1), now, waiting (jobs in every lane), delayed, leased, paused (0/1),
    in_turn (jobs in lanes taking turns), lanes in turn, {lane, jobs, ...} parked,
    {slot, lanes, jobs, ...} blocked, {lane, running, ...} of the leases read, running against the
    queue's concurrency, the queue's rate TAT ('' for none), cut short (0/1) }
]]
--- @include now
--- @include lanes
local ready, delayed, leases, paused, flow = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = now_ms(ARGV[1])
local budget, max_leases = tonumber(ARGV[2]), tonumber(ARGV[3])
local ready_n = redis.call('ZCARD', ready)
local head = { redis.call('EXISTS', flow), now, ready_n, redis.call('ZCARD', delayed), redis.call('ZCARD', leases),
  redis.call('EXISTS', paused) }
if head[1] == 0 then
  return { head[1], head[2], head[3], head[4], head[5], head[6], ready_n, 0, {}, {}, {}, 0, '', 0 }
end
local tag = flow_tag(flow)
local counted = { [''] = true } -- the default lane is `ready`, counted above
local waiting, cut = ready_n, 0

-- The jobs of `lane`; each lane adds to `waiting` once, and uses up the budget.
local function jobs_of(lane)
  local n = redis.call('ZCARD', lane_key(tag, lane, ready))
  if not counted[lane] then
    counted[lane] = true
    waiting = waiting + n
    budget = budget - 1
  end
  return n
end

local in_turn, lanes_n = ready_n, redis.call('ZCARD', tag .. ':lanes')
for _, lane in ipairs(redis.call('ZRANGE', tag .. ':lanes', 0, math.max(0, budget - 1))) do
  if lane ~= '' then
    in_turn = in_turn + jobs_of(lane)
  end
end
local parked = {}
for _, lane in ipairs(redis.call('ZRANGE', tag .. ':parked', 0, math.max(0, budget - 1))) do
  parked[#parked + 1] = lane
  parked[#parked + 1] = jobs_of(lane)
end
local blocked = {}
for _, slot in ipairs(redis.call('SMEMBERS', tag .. ':blockers')) do
  if budget <= 0 then
    cut = 1
    break
  end
  local lanes, jobs = redis.call('SMEMBERS', tag .. ':blocked:' .. slot), 0
  for _, lane in ipairs(lanes) do
    jobs = jobs + jobs_of(lane)
  end
  blocked[#blocked + 1] = slot
  blocked[#blocked + 1] = #lanes
  blocked[#blocked + 1] = jobs
end
if budget < 0 or lanes_n + redis.call('ZCARD', tag .. ':parked') > tonumber(ARGV[2]) then
  cut = 1
end
local by_lane, running = {}, {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases, now, '+inf', 'LIMIT', 0, max_leases)) do
  local lane = lane_of(tag, id)
  by_lane[lane] = (by_lane[lane] or 0) + 1
end
for lane, n in pairs(by_lane) do
  running[#running + 1] = lane
  running[#running + 1] = n
end
return { head[1], head[2], waiting, head[4], head[5], head[6], in_turn, lanes_n, parked, blocked, running,
  redis.call('ZCOUNT', tag .. ':run', now, '+inf'), redis.call('GET', tag .. ':tat') or '', cut }
