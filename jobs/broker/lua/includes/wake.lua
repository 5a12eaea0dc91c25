-- One wake-up token for blocked workers, and a message on the same name for the workers of several
-- queues on a cluster, which cannot BLPOP across slots (jobs/broker/waiting.py).
local function signal(notify)
  if redis.call('LLEN', notify) == 0 then
    redis.call('RPUSH', notify, '1')
  end
  redis.call('PUBLISH', notify, '1')
end

-- Leaves one wake-up token while `waiting` (the ready ZSET, or a flow queue's lanes) holds something,
-- and none when it is empty, so the notify list never grows and no wake-up is lost.
local function wake(waiting, notify)
  if redis.call('ZCARD', waiting) > 0 then
    signal(notify)
  else
    redis.call('DEL', notify)
  end
end

-- A delayed job that is now the earliest due wakes one blocked worker, which then sleeps exactly
-- until it is due (claim.lua returns the wait), instead of up to a whole poll interval.
local function wake_if_earliest(delayed, notify, id)
  local head = redis.call('ZRANGE', delayed, 0, 0)
  if head[1] == id then
    signal(notify)
  end
end
