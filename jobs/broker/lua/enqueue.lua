--[[
  enqueue: adds jobs to one queue, ready now or delayed until their due time.
  Input:
    KEYS[1] ready    ZSET  id -> ready score (priority, then FIFO)
    KEYS[2] delayed  ZSET  id -> due time, ms since the epoch
    KEYS[3] prio     HASH  id -> priority, for delayed jobs
    KEYS[4] seq      STRING FIFO sequence
    KEYS[5] notify   LIST  wake-up signals
    KEYS[6] leases   ZSET  id -> lease deadline (an id leased already is not added again)
    ARGV[1] now_ms (0: Redis TIME); then triples: id, priority, due_ms (0: now)
  Output: the number of ids added.
]]
--- @include now
--- @include ready_score
--- @include wake
local ready, delayed, prio, seq, notify, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now = now_ms(ARGV[1])
local added = 0
for i = 2, #ARGV, 3 do
  local id, priority, due = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if not redis.call('ZSCORE', leases, id) then
    if due > now then
      added = added + redis.call('ZADD', delayed, 'NX', due, id)
      redis.call('HSET', prio, id, priority)
      wake_if_earliest(delayed, notify, id)
    else
      added = added + redis.call('ZADD', ready, 'NX', ready_score(seq, priority), id)
    end
  end
end
wake(ready, notify)
return added
