--[[
  Hands an active job back without using up an attempt: its lock is released and it returns to
  the front of the ready list (or the front of its priority class), so the next free worker
  takes it. Used on shutdown for jobs that did not finish within the grace period, and when a
  processor rate-limits the queue (BullMQ's RateLimitError): the reply is then how long the
  queue's limiter still holds, which the worker waits out before claiming again.

  KEYS:
    [1] active - P:Q:active
    [2] wait - P:Q:wait
    [3] stalled - P:Q:stalled
    [4] paused - P:Q:paused
    [5] meta - P:Q:meta
    [6] prioritized - P:Q:prioritized
    [7] marker - P:Q:marker
    [8] events - P:Q:events
    [9] job - P:Q:<id>
    [10] limiter - P:Q:limiter
  ARGV:
    [1] jobId
    [2] token
    [3] compat - BULLMQ_COMPAT: "auto", "5" or "6" (paused-queue rule)
  Returns: the limiter's remaining time in ms (0 when it is not set) once handed back; -1 no
           job hash, -2 no lock, -3 not active, -6 lock owned by another
  Emits: waiting (prev active)
  Compat: the same state move as BullMQ's moveJobFromActiveToWait (rate-limit put-back).
]]
local rcall = redis.call
local activeKey = KEYS[1]
local waitKey = KEYS[2]
local stalledKey = KEYS[3]
local pausedKey = KEYS[4]
local metaKey = KEYS[5]
local prioritizedKey = KEYS[6]
local markerKey = KEYS[7]
local eventsKey = KEYS[8]
local jobKey = KEYS[9]
local limiterKey = KEYS[10]
local jobId = ARGV[1]
local token = ARGV[2]
local compat = ARGV[3]

--!include leaveActive
--!include readQueueState
--!include emitEvent
--!include addWakeMarker
--!include readyListFor

local left = leaveActive(jobKey, activeKey, stalledKey, token, jobId)
if left < 0 then
  return left
end
local state = readQueueState(metaKey, activeKey, compat)
local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
if priority > 0 then
  rcall("ZADD", prioritizedKey, priority * 4294967296, jobId)
else
  rcall("RPUSH", readyListFor(waitKey, pausedKey, state), jobId)
end
addWakeMarker(markerKey, state)
emitEvent(eventsKey, state.maxEvents, "waiting", "jobId", jobId, "prev", "active")
local limitedFor = rcall("PTTL", limiterKey)
if limitedFor > 0 then
  return limitedFor
end
return 0
