--[[
  Ends a failed attempt that will be retried at once (no backoff delay): the job goes from
  `active` back to the ready list (LPUSH, back of the FIFO; RPUSH for LIFO jobs) or to
  `prioritized` at the back of its class. `atm` counts the attempt; the failure is recorded.

  KEYS:
    [1] active - P:Q:active
    [2] wait - P:Q:wait
    [3] paused - P:Q:paused
    [4] job - P:Q:<id>
    [5] meta - P:Q:meta
    [6] events - P:Q:events
    [7] delayed - P:Q:delayed
    [8] prioritized - P:Q:prioritized
    [9] pc - P:Q:pc
    [10] marker - P:Q:marker
    [11] stalled - P:Q:stalled
  ARGV:
    [1] base key - "P:Q:"
    [2] now - ms since epoch
    [3] push command - "LPUSH" (FIFO) or "RPUSH" (LIFO)
    [4] jobId
    [5] token
    [6] failedReason - raw message
    [7] stacktrace - JSON array of strings
    [8] compat - BULLMQ_COMPAT: "auto", "5" or "6" (paused-queue rule)
  Returns: 0 done, -1 no job hash, -2 no lock, -3 not active, -6 lock owned by another token
  Emits: waiting (prev active), and waiting (prev delayed) for promoted jobs
  Compat: BullMQ 5 and 6 alike (paused jobs: see includes/readyListFor).
]]
local rcall = redis.call
local activeKey = KEYS[1]
local waitKey = KEYS[2]
local pausedKey = KEYS[3]
local jobKey = KEYS[4]
local metaKey = KEYS[5]
local eventsKey = KEYS[6]
local delayedKey = KEYS[7]
local prioritizedKey = KEYS[8]
local pcKey = KEYS[9]
local markerKey = KEYS[10]
local stalledKey = KEYS[11]
local baseKey = ARGV[1]
local now = tonumber(ARGV[2])
local pushCmd = ARGV[3] == "RPUSH" and "RPUSH" or "LPUSH"
local jobId = ARGV[4]
local token = ARGV[5]
local compat = ARGV[8]

--!include leaveActive
--!include readQueueState
--!include promoteDueJobs

local state = readQueueState(metaKey, activeKey, compat)
promoteDueJobs(delayedKey, waitKey, pausedKey, prioritizedKey, pcKey, markerKey, eventsKey,
               baseKey, now, state)
local left = leaveActive(jobKey, activeKey, stalledKey, token, jobId)
if left < 0 then
  return left
end
rcall("HSET", jobKey, "failedReason", ARGV[6], "stacktrace", ARGV[7])
state = readQueueState(metaKey, activeKey, compat)
local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
pushReady(readyListFor(waitKey, pausedKey, state), prioritizedKey, pcKey, jobId, priority, pushCmd)
addWakeMarker(markerKey, state)
rcall("HINCRBY", jobKey, "atm", 1)
emitEvent(eventsKey, state.maxEvents, "waiting", "jobId", jobId, "prev", "active")
return 0
