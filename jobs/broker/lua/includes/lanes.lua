-- Lanes (docs/flow-control.md): a flow queue keeps its waiting jobs per lane, one lane per group, and
-- one per (type, group) when the type carries limits. A lane is named `group`, or `type .. "\n" .. group`
-- (a group holds no control character); the default lane "" (no group, a type without limits) is the
-- queue's `ready` ZSET itself. Lane keys are built here from the queue's tag ("<prefix>:{queue}"), so
-- every key a script touches shares the queue's hash slot.
--   <tag>:flow            STRING  present once the queue has used a lane other than ""
--   <tag>:lanes           ZSET    lane -> pass (round robin: the lowest pass takes the next turn)
--   <tag>:lane:<lane>     ZSET    id -> ready score (priority, then FIFO)
--   <tag>:jlane           HASH    id -> lane, for every job of a lane other than ""
--   <tag>:parked          ZSET    lane -> ms when its rate limit lets a job through again
--   <tag>:blocked:<slot>  SET     lanes waiting for a concurrency slot (`g:<group>`, `t:<type>`)
--   <tag>:blockers        SET     the slots some lane waits for
--   <tag>:run[:<slot>]    ZSET    id -> lease deadline: the jobs running against a concurrency limit
--   <tag>:rechecked       STRING  present for a second after the claim last checked the blocked lanes
-- Invariant: every lane that holds jobs is in `lanes`, `parked` or a `blocked` set (or several: a
-- lane found in the wrong one is simply put back where it belongs when its turn comes).

--- @include wake

local function flow_tag(flow_key)
  return string.sub(flow_key, 1, -6) -- strip ":flow"
end

local function lane_key(tag, lane, ready)
  if lane == '' then
    return ready
  end
  return tag .. ':lane:' .. lane
end

-- A lane's group and type ('' for none): the text after the last newline is the group.
local function lane_parts(lane)
  local cut = string.find(lane, '\n[^\n]*$')
  if not cut then
    return lane, ''
  end
  return string.sub(lane, cut + 1), string.sub(lane, 1, cut - 1)
end

-- A lane takes its turn at the current head's pass: behind no one, so it waits at most one turn.
local function join_turns(tag, lane)
  local lanes = tag .. ':lanes'
  local head = redis.call('ZRANGE', lanes, 0, 0, 'WITHSCORES')
  redis.call('ZADD', lanes, 'NX', head[2] or 0, lane)
end

-- The queue takes the flow path from now on; the jobs leased on the fast path until now hold the
-- queue's concurrency slot (`run`) like those claimed from here on.
local function mark_flow(tag)
  if redis.call('SET', tag .. ':flow', '1', 'NX') then
    redis.call('ZUNIONSTORE', tag .. ':run', 2, tag .. ':run', tag .. ':leases', 'AGGREGATE', 'MAX')
  end
end

-- Adds a waiting job to its lane; a lane that was empty joins the turns.
local function lane_push(tag, ready, lane, id, score)
  local key = lane_key(tag, lane, ready)
  local added = redis.call('ZADD', key, 'NX', score, id)
  if lane ~= '' then
    redis.call('HSET', tag .. ':jlane', id, lane)
    mark_flow(tag)
  end
  if added == 1 and redis.call('ZCARD', key) == 1 then
    join_turns(tag, lane)
  end
  return added
end

-- The slots a job of `lane` holds while it runs: the queue's, its group's and its limited type's.
local function lane_slots(tag, lane)
  local group, jtype = lane_parts(lane)
  local slots = { tag .. ':run' }
  local names = {}
  if group ~= '' then
    slots[#slots + 1] = tag .. ':run:g:' .. group
    names[#names + 1] = 'g:' .. group
  end
  if jtype ~= '' then
    slots[#slots + 1] = tag .. ':run:t:' .. jtype
    names[#names + 1] = 't:' .. jtype
  end
  return slots, names
end

-- Lanes that waited for `slot` take their turns again.
local function unblock(tag, slot)
  local key = tag .. ':blocked:' .. slot
  for _, lane in ipairs(redis.call('SMEMBERS', key)) do
    join_turns(tag, lane)
  end
  redis.call('DEL', key)
  redis.call('SREM', tag .. ':blockers', slot)
end

-- A running job of `lane` gives back its slots (settled or reclaimed); lanes waiting for them go on.
local function free_slots(tag, lane, id)
  local slots, names = lane_slots(tag, lane)
  for _, key in ipairs(slots) do
    redis.call('ZREM', key, id)
  end
  for _, slot in ipairs(names) do
    unblock(tag, slot)
  end
end

-- A job starts running: it holds its slots until `deadline` (renewed with its lease).
local function hold_slots(tag, lane, id, deadline, mode)
  local slots = lane_slots(tag, lane)
  for _, key in ipairs(slots) do
    if mode then
      redis.call('ZADD', key, mode, deadline, id)
    else
      redis.call('ZADD', key, deadline, id)
    end
  end
end

-- The lane of a job ('' for the default lane).
local function lane_of(tag, id)
  return redis.call('HGET', tag .. ':jlane', id) or ''
end

-- Leaves one wake-up token while some lane may be claimed now; none otherwise (wake.lua).
local function wake_lanes(tag, notify)
  wake(tag .. ':lanes', notify)
end
