--[[
  Writes marker member "1" scored with the due time (ms) of the earliest delayed job, so a
  blocked worker knows when to come back and promote it. The score may be fractional.

  KEYS: none (marker and delayed keys are arguments)
  ARGV: none
  Returns: nothing
  Emits: none
  Compat: same as BullMQ 5 and 6.
]]
local function addDelayMarker(markerKey, delayedKey)
  local first = rcall("ZRANGE", delayedKey, 0, 0, "WITHSCORES")
  if first[2] then
    rcall("ZADD", markerKey, tonumber(first[2]) / 4096, "1")
  end
end
