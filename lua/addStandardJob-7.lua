--[[
  Adds a job with a caller-chosen id to the queue, as a Node `Queue.add(name, data, {jobId})`
  without delay, priority or parent leaves it: the job hash (name, data, opts, timestamp,
  delay 0, priority 0), an `added` event, the id pushed to the back of the ready list (`wait`,
  or `paused` under BullMQ 5's pause rule), a `waiting` event and the wake marker. An id that
  already names a job adds nothing and emits `duplicated`, as BullMQ does, so a repeated
  command never enqueues a day twice.

  KEYS:
    [1] wait - P:Q:wait
    [2] paused - P:Q:paused
    [3] meta - P:Q:meta
    [4] active - P:Q:active
    [5] events - P:Q:events
    [6] marker - P:Q:marker
    [7] job - P:Q:<id>
  ARGV:
    [1] job id
    [2] name
    [3] data - JSON text
    [4] opts - JSON text (attempts, backoff, removeOnComplete…)
    [5] timestamp - ms since the Unix epoch
    [6] compat - BULLMQ_COMPAT: auto, 5 or 6
  Returns: 1 added, 0 the id already names a job
  Emits: added, waiting; duplicated for an existing id
  Compat: BullMQ 5 pushes to `paused` while the queue is paused, 6 to `wait` (readyListFor).
]]
local rcall = redis.call
local waitKey = KEYS[1]
local pausedKey = KEYS[2]
local metaKey = KEYS[3]
local activeKey = KEYS[4]
local eventsKey = KEYS[5]
local markerKey = KEYS[6]
local jobKey = KEYS[7]
local jobId = ARGV[1]
local name = ARGV[2]
local data = ARGV[3]
local opts = ARGV[4]
local timestamp = ARGV[5]
local compat = ARGV[6]
--!include readQueueState
--!include readyListFor
--!include emitEvent
--!include addWakeMarker

local state = readQueueState(metaKey, activeKey, compat)
if rcall("EXISTS", jobKey) == 1 then
  emitEvent(eventsKey, state.maxEvents, "duplicated", "jobId", jobId)
  return 0
end
rcall("HSET", jobKey, "name", name, "data", data, "opts", opts, "timestamp", timestamp,
      "delay", 0, "priority", 0)
emitEvent(eventsKey, state.maxEvents, "added", "jobId", jobId, "name", name)
rcall("LPUSH", readyListFor(waitKey, pausedKey, state), jobId)
emitEvent(eventsKey, state.maxEvents, "waiting", "jobId", jobId)
addWakeMarker(markerKey, state)
return 1
