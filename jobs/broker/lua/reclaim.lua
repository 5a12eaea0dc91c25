--[[
  reclaim: removes up to `limit` leases whose deadline has passed (the worker died, hung or lost
  Redis) and returns their ids with the id of the worker that held them; the caller lets each job's row decide.
  In a flow queue the jobs' concurrency slots are freed too (lanes that waited for them go on), and
  their lanes forgotten: the row decides whether the job comes back (with its lane).
  Input: KEYS[1] leases, KEYS[2] owners, KEYS[3] flow, KEYS[4] notify; ARGV[1] now_ms (0: Redis TIME),
    ARGV[2] limit
  Output: flat pairs: id, worker id
]]
--- @include now
--- @include lanes
local leases, owners, flow, notify = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now_ms(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[2]))
local tag = nil
if redis.call('EXISTS', flow) == 1 then
  tag = flow_tag(flow)
end
local out = {}
for _, id in ipairs(expired) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', owners, id) or ''
  redis.call('ZREM', leases, id)
  redis.call('HDEL', owners, id)
  if tag then
    free_slots(tag, lane_of(tag, id), id)
    redis.call('HDEL', tag .. ':jlane', id)
  end
end
if tag and #expired > 0 then
  wake_lanes(tag, notify)
end
return out
