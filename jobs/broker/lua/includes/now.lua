-- The one clock for deadlines and due times: the Redis server's, never a worker's.
-- Each clocked script passes its ARGV[1] (`now_ms`): 0 in production reads Redis TIME; a test
-- passes the time it drives instead of sleeping (jobs/clock.py).
local function now_ms(given)
  local driven = tonumber(given)
  if driven and driven > 0 then
    return driven
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
