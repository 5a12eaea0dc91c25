-- Moves at most `limit` delayed jobs whose due time has passed into the ready set, or into their
-- lanes when `tag` is given (a flow queue). Needs: ready_score, lanes. Returns the ids moved.
local function promote(ready, delayed, prio, seq, now, limit, tag)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local priority = redis.call('HGET', prio, id) or '0'
    if tag then
      lane_push(tag, ready, lane_of(tag, id), id, ready_score(seq, priority))
    else
      redis.call('ZADD', ready, 'NX', ready_score(seq, priority), id)
    end
    redis.call('ZREM', delayed, id)
    redis.call('HDEL', prio, id)
  end
  return due
end
