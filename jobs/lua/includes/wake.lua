-- Leaves one wake-up token for blocked workers while ready jobs remain, and none when the
-- queue is empty, so the notify list never grows and no wake-up is lost.
local function wake(ready, notify)
  if redis.call('ZCARD', ready) > 0 then
    if redis.call('LLEN', notify) == 0 then
      redis.call('RPUSH', notify, '1')
    end
  else
    redis.call('DEL', notify)
  end
end
