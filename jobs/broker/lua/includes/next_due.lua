-- Milliseconds from `now` until the earliest delayed job is due: 0 if one is due already, -1 if none.
local function next_due(delayed, now)
  local head = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  if #head == 0 then
    return -1
  end
  return math.max(0, tonumber(head[2]) - now)
end
