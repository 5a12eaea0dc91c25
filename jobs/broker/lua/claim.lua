--[[
  claim: promotes due delayed jobs, then takes up to `count` ready jobs under a lease.
  The worker owns a job while its lease lives and must renew it (renew.lua); an expired lease is
  reclaimed (reclaim.lua) and the job goes back through its retry policy.
  Input:
    KEYS[1] ready, KEYS[2] delayed, KEYS[3] prio, KEYS[4] seq, KEYS[5] notify,
    KEYS[6] leases   ZSET id -> deadline (ms, Redis clock)
    KEYS[7] owners   HASH id -> the owning worker's id
    KEYS[8] paused   STRING, present while the queue is paused
    ARGV[1] now_ms (0: Redis TIME), ARGV[2] worker id, ARGV[3] count, ARGV[4] lease ttl in ms,
    ARGV[5] promote limit
  Output: { {ids...}, ms until the next delayed job is due (-1: none), paused (0/1) }
]]
--- @include now
--- @include ready_score
--- @include promote
--- @include wake
--- @include next_due
local ready, delayed, prio, seq, notify, leases, owners, paused =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local worker_id, count, ttl, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if redis.call('EXISTS', paused) == 1 then
  return { {}, -1, 1 }
end
local now = now_ms(ARGV[1])
promote(ready, delayed, prio, seq, now, limit)
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
