--[[
  restore: the reconciler's write. Puts back what the database says should be in Redis, without
  disturbing what is there: waiting jobs into ready or delayed, running jobs as fresh leases.
  Input:
    KEYS[1] ready, KEYS[2] delayed, KEYS[3] prio, KEYS[4] seq, KEYS[5] notify, KEYS[6] leases, KEYS[7] owners
    ARGV[1] now_ms (0: Redis TIME), ARGV[2] lease ttl ms; then quads: id, kind ('ready' | 'delayed' | 'lease'), priority or worker id, due_ms
  Output: the number of entries created.
]]
--- @include now
--- @include ready_score
--- @include wake
local ready, delayed, prio, seq, notify, leases, owners =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local now = now_ms(ARGV[1])
local ttl = tonumber(ARGV[2])
local created = 0
for i = 3, #ARGV, 4 do
  local id, kind, extra, due = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local leased = redis.call('ZSCORE', leases, id)
  local queued = redis.call('ZSCORE', ready, id) or redis.call('ZSCORE', delayed, id)
  if kind == 'lease' then
    if not leased then
      redis.call('ZADD', leases, now + ttl, id)
      redis.call('HSET', owners, id, extra)
      created = created + 1
    end
  elseif not leased and not queued then
    if kind == 'delayed' and due > now then
      redis.call('ZADD', delayed, due, id)
      redis.call('HSET', prio, id, extra)
    else
      redis.call('ZADD', ready, ready_score(seq, extra), id)
    end
    created = created + 1
  end
end
wake(ready, notify)
return created
