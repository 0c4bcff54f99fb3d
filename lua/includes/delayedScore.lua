--[[
  The `delayed` score for a job due at `dueMs`: dueMs * 4096 plus a sequence number, one more
  than the highest score already in that millisecond (capped at its top), so jobs due in the
  same millisecond keep their insertion order.

  KEYS: none
  ARGV: none
  Returns: the score
  Emits: none
  Compat: same packing as BullMQ 5 and 6.
]]
local function delayedScore(delayedKey, dueMs)
  local low = dueMs * 4096
  local high = low + 4095
  local last = rcall("ZREVRANGEBYSCORE", delayedKey, high, low, "WITHSCORES", "LIMIT", 0, 1)
  if last[2] then
    local nextScore = tonumber(last[2]) + 1
    if nextScore > high then
      return high
    end
    return nextScore
  end
  return low
end
