--[[
  Ends an attempt by moving the job from `active` to `delayed`, due at now + delay. Two uses:
  a failed attempt retried after a backoff delay (`atm` counts the attempt and the failure is
  recorded), or a processor that defers its job (skipAttempt "1", BullMQ's DelayedError:
  neither `atm` nor `failedReason`/`stacktrace` change). With fetch-next the same call claims
  the worker's next job.

  KEYS:
    [1] marker - P:Q:marker
    [2] active - P:Q:active
    [3] prioritized - P:Q:prioritized
    [4] delayed - P:Q:delayed
    [5] job - P:Q:<id>
    [6] events - P:Q:events
    [7] meta - P:Q:meta
    [8] stalled - P:Q:stalled
    [9] wait - P:Q:wait
    [10] limiter - P:Q:limiter
    [11] paused - P:Q:paused
    [12] pc - P:Q:pc
  ARGV:
    [1] base key - "P:Q:"
    [2] now - ms since epoch
    [3] jobId
    [4] token
    [5] delay - ms from now
    [6] failedReason - raw message (ignored when skipping the attempt)
    [7] stacktrace - JSON array of strings (ignored when skipping the attempt)
    [8] fetchNext - "1" or "0"
    [9] lockDuration - ms, for the next job's lock
    [10] worker name - "" for none
    [11] limiter max - "" for none
    [12] limiter duration - ms, "" for none
    [13] skipAttempt - "1" for a deferral that is not a failed attempt, else "0"
    [14] compat - BULLMQ_COMPAT: "auto", "5" or "6" (paused-queue rule)
  Returns:
    0 moved (nothing claimed)
    {fields, jobId, 0, 0} moved, and the next job was claimed
    -1 no job hash, -2 no lock, -3 not active, -6 lock owned by another token
  Emits: delayed (delay = absolute due time in ms), active and waiting when fetching next
  Compat: BullMQ 5.73.3+ and 6 (earlier 5.x had no fetch-next here; the state is the same).
]]
local rcall = redis.call
local keys = {marker = KEYS[1], active = KEYS[2], prioritized = KEYS[3], delayed = KEYS[4],
              events = KEYS[6], meta = KEYS[7], stalled = KEYS[8], wait = KEYS[9],
              limiter = KEYS[10], paused = KEYS[11], pc = KEYS[12]}
local jobKey = KEYS[5]
local baseKey = ARGV[1]
local now = tonumber(ARGV[2])
local jobId = ARGV[3]
local token = ARGV[4]
local delay = tonumber(ARGV[5])
local fetchNext = ARGV[8] == "1"
local lockDuration = tonumber(ARGV[9])
local workerName = ARGV[10] ~= "" and ARGV[10] or nil
local limitMax = tonumber(ARGV[11])
local limitDuration = tonumber(ARGV[12])
local skipAttempt = ARGV[13] == "1"
local compat = ARGV[14]

--!include leaveActive
--!include delayedScore
--!include addDelayMarker
--!include claimNextJob

local left = leaveActive(jobKey, keys.active, keys.stalled, token, jobId)
if left < 0 then
  return left
end
if skipAttempt then
  rcall("HSET", jobKey, "delay", delay)
else
  rcall("HSET", jobKey, "failedReason", ARGV[6], "stacktrace", ARGV[7], "delay", delay)
  rcall("HINCRBY", jobKey, "atm", 1)
end
local due = now + delay
rcall("ZADD", keys.delayed, delayedScore(keys.delayed, due), jobId)
local state = readQueueState(keys.meta, keys.active, compat)
emitEvent(keys.events, state.maxEvents, "delayed", "jobId", jobId, "delay", due)

if fetchNext then
  local next = claimNextJob(keys, baseKey, now, token, lockDuration, workerName, limitMax,
                            limitDuration, compat, state)
  if next and next[2] ~= 0 then
    return next
  end
end
addDelayMarker(keys.marker, keys.delayed)
return 0
