-- Moves at most `limit` delayed jobs whose due time has passed into the ready set.
-- Needs: ready_score. Returns the ids moved.
local function promote(ready, delayed, prio, seq, now, limit)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local priority = redis.call('HGET', prio, id) or '0'
    redis.call('ZADD', ready, 'NX', ready_score(seq, priority), id)
    redis.call('ZREM', delayed, id)
    redis.call('HDEL', prio, id)
  end
  return due
end
