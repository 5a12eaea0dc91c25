-- Leaves one wake-up token for blocked workers while ready jobs remain, and none when the
-- queue is empty, so the notify list never grows and no wake-up is lost. Workers of several
-- queues on a cluster cannot BLPOP across slots; they listen on the same name (jobs/broker/waiting.py).
local function wake(ready, notify)
  if redis.call('ZCARD', ready) > 0 then
    if redis.call('LLEN', notify) == 0 then
      redis.call('RPUSH', notify, '1')
    end
    redis.call('PUBLISH', notify, '1')
  else
    redis.call('DEL', notify)
  end
end

-- A delayed job that is now the earliest due wakes one blocked worker, which then sleeps exactly
-- until it is due (claim.lua returns the wait), instead of up to a whole poll interval.
local function wake_if_earliest(delayed, notify, id)
  local head = redis.call('ZRANGE', delayed, 0, 0)
  if head[1] == id then
    if redis.call('LLEN', notify) == 0 then
      redis.call('RPUSH', notify, '1')
    end
    redis.call('PUBLISH', notify, '1')
  end
end
