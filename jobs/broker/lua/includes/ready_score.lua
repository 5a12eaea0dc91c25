-- Ready jobs sort by priority (higher first), then by a per-queue sequence (FIFO).
-- 2^44 sequences per priority; 201 priorities * 2^44 stays below 2^53, exact in a double.
-- Formatted with %.0f because tostring() of a double this large would round it.
local function ready_score_at(priority, sequence)
  return string.format('%.0f', (100 - tonumber(priority)) * 17592186044416 + sequence)
end

-- The next place in the ready set: behind every job of its priority queued so far.
local function ready_score(seq_key, priority)
  return ready_score_at(priority, redis.call('INCR', seq_key))
end

-- Sequence 0: ahead of every job of its priority (a job handed back was taken first).
local function front_score(priority)
  return ready_score_at(priority, 0)
end
