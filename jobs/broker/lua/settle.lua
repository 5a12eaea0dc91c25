--[[
  settle: ends the leases of finished attempts. Each item is acked (done), delayed for a retry,
  or released back to the front of the ready set (handed back uncharged, e.g. at shutdown).
  Fenced by the lease's owner: a worker whose lease was reclaimed and given to another cannot
  touch the new owner's lease or requeue the job a second time.
  A retry comes with its due time as the database records it (the job's schedule_at, rounded up to
  the millisecond), so Redis never makes it due before the row says (jobs/clock.py).
  Input:
    KEYS[1] ready, KEYS[2] delayed, KEYS[3] prio, KEYS[4] seq, KEYS[5] notify, KEYS[6] leases, KEYS[7] owners
    ARGV[1] worker id; then quads: id, action ('ack' | 'retry' | 'release'), due_ms, priority
  Output: one 1 (settled) or 0 (not our lease: stale) per item.
]]
--- @include ready_score
--- @include wake
local ready, delayed, prio, seq, notify, leases, owners =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local worker_id = ARGV[1]
local out = {}
local released = false
for i = 2, #ARGV, 4 do
  local id, action, due, priority = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('HGET', owners, id) == worker_id then
    redis.call('ZREM', leases, id)
    redis.call('HDEL', owners, id)
    if action == 'retry' then
      redis.call('ZADD', delayed, due, id)
      redis.call('HSET', prio, id, priority)
      wake_if_earliest(delayed, notify, id)
    elseif action == 'release' then
      redis.call('ZADD', ready, front_score(priority), id)
      released = true
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if released then
  wake(ready, notify)
end
return out
