-- Rate limits as GCRA (a token bucket kept as one number): one job every `interval` ms on average,
-- with up to `burst` at once. The key holds the theoretical arrival time (TAT, ms); a missing key is
-- a full bucket. The key expires once the bucket is full again, so idle limits leave nothing behind.

-- 0 when a job may start at `now`, else the ms to wait. Charges nothing.
local function rate_wait(key, interval, burst, now)
  if interval <= 0 then
    return 0
  end
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then
    tat = now
  end
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
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then
    tat = now
  end
  tat = tat + interval
  redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1)
end
