--[[
  Writes marker member "0" (score 0): "a job can be claimed now". Blocked workers wait on the
  marker with BZPOPMIN. Skipped while the queue is paused or at its global concurrency, because
  nothing could be claimed then.

  KEYS: none (the marker key is an argument)
  ARGV: none
  Returns: nothing
  Emits: none
  Compat: same marker members as BullMQ 5 and 6.
]]
local function addWakeMarker(markerKey, state)
  if not state.paused and not state.maxed then
    rcall("ZADD", markerKey, 0, "0")
  end
end
