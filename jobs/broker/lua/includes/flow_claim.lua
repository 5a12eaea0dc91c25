-- The claim of a flow queue (one with lanes or limits): lanes take turns, and a lane held by a limit
-- is set aside in O(log n) instead of blocking the others. Needs: lanes, gcra.
-- `limits`: conc, rate (interval ms), burst for the queue (`q`) and for each group (`g`), and per
-- limited type (`types[name]`); 0 means none. `weights[group]`: that group's turns per round (1). Returns ids, and the ms until a limit held back now
-- may let a job through (nil: none waits on time; a freed slot wakes the queue instead).

-- What this claim held back, for the workers' metrics: flat pairs of limit kind and lane
-- (queue_concurrency, queue_rate, group_concurrency, group_rate, type_concurrency, type_rate).
local holds = {}

local function note_hold(kind, lane)
  holds[#holds + 1] = kind
  holds[#holds + 1] = lane
end

-- The queue's own limit stops the claim: a hold only if some lane has a job waiting.
local function note_queue_hold(tag, kind)
  if redis.call('ZCARD', tag .. ':lanes') > 0 then
    note_hold(kind, '')
  end
end

-- Room for one more job under a concurrency limit (expired leases free their slots first).
local function has_room(key, limit, now)
  if limit <= 0 then
    return true
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  return redis.call('ZCARD', key) < limit
end

local function earliest(a, b)
  if a == nil or (b ~= nil and b < a) then
    return b
  end
  return a
end

-- Parked lanes whose rate allows a job again take their turns; returns ms until the next one may.
local function unpark(tag, now)
  local parked = tag .. ':parked'
  for _, lane in ipairs(redis.call('ZRANGEBYSCORE', parked, '-inf', now, 'LIMIT', 0, 100)) do
    redis.call('ZREM', parked, lane)
    join_turns(tag, lane)
  end
  local head = redis.call('ZRANGE', parked, 0, 0, 'WITHSCORES')
  if #head == 0 then
    return nil
  end
  return math.max(1, tonumber(head[2]) - now)
end

-- Once a second, up to 200 slots that lanes wait for are checked against the limits passed now: a
-- limit raised or removed lets its waiting lanes go on without waiting for a job to end.
local function recheck_blocked(tag, limits, now)
  if not redis.call('SET', tag .. ':rechecked', '1', 'PX', 1000, 'NX') then
    return
  end
  for _, slot in ipairs(redis.call('SRANDMEMBER', tag .. ':blockers', 200)) do
    local kind, name = string.sub(slot, 1, 1), string.sub(slot, 3)
    local conc = limits.g.conc
    if kind == 't' then
      conc = (limits.types[name] or { conc = 0 }).conc
    end
    if has_room(tag .. ':run:' .. slot, conc, now) then
      unblock(tag, slot)
    end
  end
end

local function block(tag, lane, slot)
  redis.call('ZREM', tag .. ':lanes', lane)
  redis.call('SADD', tag .. ':blocked:' .. slot, lane)
  redis.call('SADD', tag .. ':blockers', slot)
end

-- Why `lane` cannot start a job now: 'blocked' (a slot), or ms to wait (a rate); nil when it can.
local function lane_hold(tag, lane, limits, now)
  local group, jtype = lane_parts(lane)
  local t = limits.types[jtype]
  if group ~= '' and not has_room(tag .. ':run:g:' .. group, limits.g.conc, now) then
    block(tag, lane, 'g:' .. group)
    note_hold('group_concurrency', lane)
    return 'blocked'
  end
  if t and not has_room(tag .. ':run:t:' .. jtype, t.conc, now) then
    block(tag, lane, 't:' .. jtype)
    note_hold('type_concurrency', lane)
    return 'blocked'
  end
  local wait, kind = 0, 'group_rate'
  if group ~= '' then
    wait = rate_wait(tag .. ':tat:g:' .. group, limits.g.rate, limits.g.burst, now)
  end
  if t then
    local twait = rate_wait(tag .. ':tat:t:' .. jtype, t.rate, t.burst, now)
    if twait > wait then
      wait, kind = twait, 'type_rate'
    end
  end
  if wait > 0 then
    note_hold(kind, lane)
    redis.call('ZREM', tag .. ':lanes', lane)
    redis.call('ZADD', tag .. ':parked', now + wait, lane)
    return wait
  end
  return nil
end

local function charge(tag, lane, limits, now)
  local group, jtype = lane_parts(lane)
  rate_charge(tag .. ':tat', limits.q.rate, now)
  if group ~= '' then
    rate_charge(tag .. ':tat:g:' .. group, limits.g.rate, now)
  end
  local t = limits.types[jtype]
  if t then
    rate_charge(tag .. ':tat:t:' .. jtype, t.rate, now)
  end
end

-- One turn: the head lane starts one job (returns its id), or is set aside (returns nil, wait).
-- `stop` is true when the queue's own limits (or no lane left) end the claim.
local function take_turn(tag, ready, limits, now)
  local lanes = tag .. ':lanes'
  if not has_room(tag .. ':run', limits.q.conc, now) then
    note_queue_hold(tag, 'queue_concurrency')
    return nil, nil, true
  end
  local qwait = rate_wait(tag .. ':tat', limits.q.rate, limits.q.burst, now)
  if qwait > 0 then
    note_queue_hold(tag, 'queue_rate')
    return nil, qwait, true
  end
  local head = redis.call('ZRANGE', lanes, 0, 0, 'WITHSCORES')
  if #head == 0 then
    return nil, nil, true
  end
  local lane, pass = head[1], tonumber(head[2])
  local key = lane_key(tag, lane, ready)
  local first = redis.call('ZRANGE', key, 0, 0)[1]
  if not first then
    redis.call('ZREM', lanes, lane)
    return nil, nil, false
  end
  local held = lane_hold(tag, lane, limits, now)
  if held == 'blocked' then
    return nil, nil, false
  elseif held then
    return nil, held, false
  end
  charge(tag, lane, limits, now)
  redis.call('ZREM', key, first)
  if redis.call('ZCARD', key) > 0 then
    local group = lane_parts(lane)
    -- to the back of the turns: a group of weight w takes w turns for every one of weight 1
    redis.call('ZADD', lanes, pass + 1 / (limits.weights[group] or 1), lane)
  else
    redis.call('ZREM', lanes, lane)
  end
  return first, lane, false
end

-- Claims up to `count` jobs under `worker_id`'s lease; returns ids and the ms until a held limit may
-- let a job through (nil if none waits on time).
local function flow_claim(tag, ready, leases, owners, notify, worker_id, count, ttl, limits, now)
  local wait = unpark(tag, now)
  recheck_blocked(tag, limits, now)
  if redis.call('ZCARD', ready) > 0 then
    join_turns(tag, '') -- the default lane is filled by scripts that do not track turns
  end
  local ids = {}
  local stopped_by_queue = false
  for _ = 1, count * 4 + 16 do -- bounded work per call: each turn claims, parks or drops a lane
    if #ids >= count then
      break
    end
    local id, lane_or_wait, stop = take_turn(tag, ready, limits, now)
    if id then
      ids[#ids + 1] = id
      redis.call('ZADD', leases, now + ttl, id)
      redis.call('HSET', owners, id, worker_id)
      hold_slots(tag, lane_or_wait, id, now + ttl)
    else
      wait = earliest(wait, lane_or_wait)
      if stop then
        stopped_by_queue = redis.call('ZCARD', tag .. ':lanes') > 0
        break
      end
    end
  end
  if stopped_by_queue then
    redis.call('DEL', notify) -- a freed slot (settle, reclaim) or the wait wakes the queue again
  else
    wake_lanes(tag, notify)
  end
  return ids, wait
end

-- The limits a worker passes (ARGV from `first`): queue and group conc/rate/burst, the number of
-- limited types and a quad per type (name, conc, rate, burst), then pairs of group and weight.
local function read_limits(argv, first)
  local function triple(i)
    return { conc = tonumber(argv[i]), rate = tonumber(argv[i + 1]), burst = tonumber(argv[i + 2]) }
  end
  local limits = { q = triple(first), g = triple(first + 3), types = {}, weights = {} }
  local types = tonumber(argv[first + 6] or '0')
  local i = first + 7
  for _ = 1, types do
    limits.types[argv[i]] = triple(i + 1)
    i = i + 4
  end
  while i < #argv do
    limits.weights[argv[i]] = tonumber(argv[i + 1])
    limits.weighted = true
    i = i + 2
  end
  return limits
end

-- Queue or group limits make a queue a flow queue; type limits matter only where type lanes exist
-- (whose jobs made the queue a flow queue already).
local function limits_set(limits)
  return limits.weighted or limits.q.conc + limits.q.rate + limits.g.conc + limits.g.rate > 0
end
