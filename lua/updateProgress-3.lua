--[[
  Stores a job's progress (any JSON value) and announces it. No lock check: BullMQ lets any
  client update progress.

  KEYS:
    [1] job - P:Q:<id>
    [2] events - P:Q:events
    [3] meta - P:Q:meta
  ARGV:
    [1] jobId
    [2] progress - JSON text
  Returns: 0 stored, -1 no job hash
  Emits: progress (data = the JSON text)
  Compat: BullMQ 5 and 6 alike.
]]
local rcall = redis.call
local jobKey = KEYS[1]
local eventsKey = KEYS[2]
local metaKey = KEYS[3]

--!include emitEvent

if rcall("EXISTS", jobKey) == 0 then
  return -1
end
local maxEvents = tonumber(rcall("HGET", metaKey, "opts.maxLenEvents")) or 10000
rcall("HSET", jobKey, "progress", ARGV[2])
emitEvent(eventsKey, maxEvents, "progress", "jobId", ARGV[1], "data", ARGV[2])
return 0
