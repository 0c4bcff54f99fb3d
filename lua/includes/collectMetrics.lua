--[[
  Counts one finished job in the queue's metrics for its kind (the worker's `metrics` option,
  what `Queue.getMetrics` and Bull Board's charts read). `P:Q:metrics:<kind>` holds `count`
  (every finish so far), `prevTS` and `prevCount` (the count and time of the last data point);
  `P:Q:metrics:<kind>:data` holds one delta per minute, newest first, at most `maxPoints`.

  The first finish only starts the clock. Later, when the minute (time / 60000) moved on by N
  since `prevTS`, the jobs finished since the last point are pushed as the newest point,
  followed by N - 1 zeros for the silent minutes in between (N capped at `maxPoints`), as
  BullMQ does: its head therefore reads zeros first, then the delta.

  KEYS: none (the metrics key is an argument)
  ARGV: none
  Returns: nothing
  Emits: none
  Compat: the same keys, fields and list as BullMQ 5 and 6.
]]
local function collectMetrics(metricsKey, now, maxPoints)
  local before = rcall("HINCRBY", metricsKey, "count", 1) - 1
  local prevTS = rcall("HGET", metricsKey, "prevTS")
  if not prevTS then
    rcall("HSET", metricsKey, "prevTS", now, "prevCount", 0)
    return
  end
  local minutes = math.floor(now / 60000) - math.floor(tonumber(prevTS) / 60000)
  local n = math.min(minutes, maxPoints)
  if n <= 0 then
    return
  end
  local dataKey = metricsKey .. ":data"
  local delta = before - (tonumber(rcall("HGET", metricsKey, "prevCount")) or 0)
  rcall("LPUSH", dataKey, delta)
  -- Zeros in bounded batches: LPUSH takes many values, but Lua's unpack does not.
  local zeros = n - 1
  while zeros > 0 do
    local batch = {}
    for i = 1, math.min(zeros, 5000) do
      batch[i] = 0
    end
    rcall("LPUSH", dataKey, unpack(batch))
    zeros = zeros - #batch
  end
  rcall("LTRIM", dataKey, 0, maxPoints - 1)
  rcall("HSET", metricsKey, "prevCount", before, "prevTS", now)
end
