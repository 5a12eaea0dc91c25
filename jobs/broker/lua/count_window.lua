-- A counter over a fixed window, for rate limits: KEYS[1] the counter.
-- ARGV: cost (>= 1), window (ms), limit (-1: none). The window starts with the first hit and the key
-- expires with it, so a counter never outlives its window. A hit that would pass the limit adds nothing.
-- Returns {added (1 or 0), count after, ms left in the window}.
local cost, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local left = redis.call('PTTL', KEYS[1])
if count > 0 and left < 0 then
  redis.call('PEXPIRE', KEYS[1], window)
  left = window
end
if limit >= 0 and count + cost > limit then
  return {0, count, math.max(left, 0)}
end
count = redis.call('INCRBY', KEYS[1], cost)
if count == cost then
  redis.call('PEXPIRE', KEYS[1], window)
  left = window
end
return {1, count, left}
