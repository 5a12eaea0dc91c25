-- Rate limits as GCRA (a token bucket kept as one number): one job every `interval` ms on average,
-- with up to `burst` at once. The key holds the theoretical arrival time (TAT, ms); a missing key is
-- a full bucket. The key expires once the bucket is full again, so idle limits leave nothing behind.
-- A start that comes late (a worker wakes a few ms after its turn) keeps its place on the grid, up
-- to CATCH_UP_MS (at most half an interval), so the rate holds on average; any window of one period
-- still holds at most the rate's count plus the burst.
local CATCH_UP_MS = 5

local function rate_tat(key, interval, now)
  local stored = redis.call('GET', key)
  if not stored then
    return now -- a full bucket (the key outlives its TAT by one interval: longer than the catch-up)
  end
  return math.max(tonumber(stored), now - math.min(interval / 2, CATCH_UP_MS))
end

-- 0 when a job may start at `now`, else the ms to wait. Charges nothing.
local function rate_wait(key, interval, burst, now)
  if interval <= 0 then
    return 0
  end
  local tat = rate_tat(key, interval, now)
  local wait = tat + interval - burst * interval - now
  if wait > 0 then
    return math.ceil(wait)
  end
  return 0
end

-- Charges one job started at `now`.
local function rate_charge(key, interval, now)
  if interval <= 0 then
    return
  end
  local tat = rate_tat(key, interval, now) + interval
  redis.call('SET', key, string.format('%.3f', tat), 'PX', math.max(1, math.ceil(tat - now) + math.ceil(interval)))
end
