-- Ready jobs sort by priority (higher first), then by a per-queue sequence (FIFO).
-- 2^44 sequences per priority; 201 priorities * 2^44 stays below 2^53, exact in a double.
-- Formatted with %.0f because tostring() of a double this large would round it.
local function ready_score(seq_key, priority)
  local seq = redis.call('INCR', seq_key)
  return string.format('%.0f', (100 - tonumber(priority)) * 17592186044416 + seq)
end
