--[[
  claim: promotes due delayed jobs, then takes up to `count` ready jobs under a lease.
  The worker owns a job while its lease lives and must renew it (renew.lua); an expired lease is
  reclaimed (reclaim.lua) and the job goes back through its retry policy.
  Two paths (docs/flow-control.md): a queue with no lanes and no limits pops its `ready` ZSET (the
  fast path, as before flow control); a flow queue's lanes take turns under the limits the worker
  passes (includes/flow_claim.lua), all in this one script, so two pools can never both take the
  last slot or the last token.
  Input:
    KEYS[1] ready, KEYS[2] delayed, KEYS[3] prio, KEYS[4] seq, KEYS[5] notify,
    KEYS[6] leases   ZSET id -> deadline (ms, Redis clock)
    KEYS[7] owners   HASH id -> the owning worker's id
    KEYS[8] paused   STRING, present while the queue is paused
    KEYS[9] flow     STRING, present once the queue has used lanes (includes/lanes.lua)
    ARGV[1] now_ms (0: Redis TIME), ARGV[2] worker id, ARGV[3] count, ARGV[4] lease ttl in ms,
    ARGV[5] promote limit,
    ARGV[6..11] the queue's concurrency, rate interval (ms per job), burst, then the same per group
      (0: none); ARGV[12] the number of limited job types, then a quad per type: type, concurrency,
      rate interval, burst; then pairs: group, weight (its turns per round; 1 when absent)
  Output: { {ids...}, ms until the next delayed job is due or a held limit may pass (-1: none),
    paused (0/1), and on the flow path {kind, lane, ...}: each job a limit held back in this call }
]]
--- @include now
--- @include ready_score
--- @include lanes
--- @include gcra
--- @include promote
--- @include wake
--- @include next_due
--- @include flow_claim
local ready, delayed, prio, seq, notify, leases, owners, paused, flow =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local worker_id, count, ttl, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if redis.call('EXISTS', paused) == 1 then
  return { {}, -1, 1 }
end
local now = now_ms(ARGV[1])
local limits = read_limits(ARGV, 6)
if redis.call('EXISTS', flow) == 0 and not limits_set(limits) then
  promote(ready, delayed, prio, seq, now, limit, nil)
  local ids = {}
  if count > 0 then
    local popped = redis.call('ZPOPMIN', ready, count)
    for i = 1, #popped, 2 do
      local id = popped[i]
      ids[#ids + 1] = id
      redis.call('ZADD', leases, now + ttl, id)
      redis.call('HSET', owners, id, worker_id)
    end
  end
  wake(ready, notify)
  return { ids, next_due(delayed, now), 0 }
end
local tag = flow_tag(flow)
mark_flow(tag) -- settle, renew and reclaim keep the slots from now on
promote(ready, delayed, prio, seq, now, limit, tag)
local ids, wait = flow_claim(tag, ready, leases, owners, notify, worker_id, count, ttl, limits, now)
local due = next_due(delayed, now)
if wait and (due < 0 or wait < due) then
  due = wait
end
return { ids, due, 0, holds }
