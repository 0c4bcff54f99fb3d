--[[
  Schedules the next iteration of a job scheduler when one of its iterations is claimed, as a
  Node worker does right after moveToActive (before its processor runs). Without this step a
  schedule runs once and its `next` stays in the past.

  Only the scheduler's latest iteration schedules the next one: the scheduler must still exist
  (its member in `repeat` scores the latest iteration's time) and the claimed job must be that
  iteration (`repeat:<id>:<that time>`). So a retried or recovered older iteration, or a
  scheduler removed meanwhile, schedules nothing. When the next iteration's job already exists,
  a `duplicated` event says so and nothing else changes.

  `every` schedules compute their next time here: the latest time plus `every`, or, when that
  is already past, the next slot after now that keeps the scheduler's offset (missed slots are
  skipped, not caught up). `pattern` (cron) schedules get it from the worker, which evaluates
  the pattern with its time zone.

  The next job copies the claimed job's options, with `jobId`, `delay`, `timestamp`,
  `repeatJobKey`, `prevMillis` (pattern schedules only) and `repeat.count` set for the new
  iteration, and the scheduler's template data. Due at once, it is ready now; otherwise it is
  delayed until its time.

  KEYS:
    [1] repeat - P:Q:repeat
    [2] delayed - P:Q:delayed
    [3] wait - P:Q:wait
    [4] paused - P:Q:paused
    [5] meta - P:Q:meta
    [6] prioritized - P:Q:prioritized
    [7] marker - P:Q:marker
    [8] id - P:Q:id
    [9] events - P:Q:events
    [10] pc - P:Q:pc
    [11] active - P:Q:active
    [12] producer - P:Q:<id of the claimed iteration>
  ARGV:
    [1] nextMillis - ms since epoch, the next run of a `pattern` schedule; "" for `every`
    [2] schedulerId
    [3] now - ms since epoch
    [4] producerId - the claimed iteration's job id
    [5] count - the next iteration's number (`repeat.count`)
    [6] compat - BULLMQ_COMPAT: "auto", "5" or "6" (see includes/readQueueState)
  Returns: the next iteration's job id; "" when nothing was scheduled (no such scheduler, not
           its latest iteration, or the next job exists already)
  Emits: added, then delayed or waiting; duplicated when the next job exists
  Compat: the state move of BullMQ's updateJobScheduler. Under BullMQ 5 rules the scheduler's
          `data` is filled from the claimed job when it has none, and the claimed job gets
          `nrjid` (the next job's id); BullMQ 6 does neither. Paused queues follow
          includes/readyListFor.
]]
local rcall = redis.call
local repeatKey = KEYS[1]
local delayedKey = KEYS[2]
local waitKey = KEYS[3]
local pausedKey = KEYS[4]
local metaKey = KEYS[5]
local prioritizedKey = KEYS[6]
local markerKey = KEYS[7]
local idKey = KEYS[8]
local eventsKey = KEYS[9]
local pcKey = KEYS[10]
local activeKey = KEYS[11]
local producerKey = KEYS[12]
local patternNext = tonumber(ARGV[1])
local schedulerId = ARGV[2]
local now = tonumber(ARGV[3])
local producerId = ARGV[4]
local nextCount = tonumber(ARGV[5])
local compat = ARGV[6]

--!include readQueueState
--!include emitEvent
--!include delayedScore
--!include addDelayMarker
--!include pushReady
--!include readyListFor
--!include addWakeMarker

local latest = rcall("ZSCORE", repeatKey, schedulerId)
if not latest then
  return ""
end
latest = tonumber(latest)
if producerId ~= "repeat:" .. schedulerId .. ":" .. latest then
  return ""
end

local schedulerKey = repeatKey .. ":" .. schedulerId
local attrs = rcall("HMGET", schedulerKey, "name", "data", "every", "offset")
local producer = rcall("HMGET", producerKey, "opts", "data", "name")

local decoded, opts = pcall(cjson.decode, producer[1] or "{}")
if not decoded or type(opts) ~= "table" then
  opts = {}
end
if type(opts["repeat"]) ~= "table" then
  opts["repeat"] = {}
end
local repeatOpts = opts["repeat"]

local every = tonumber(attrs[3]) or tonumber(repeatOpts["every"])
local nextMillis = patternNext
if every then
  local offset = tonumber(attrs[4]) or tonumber(repeatOpts["offset"]) or 0
  nextMillis = latest + every
  if nextMillis < now then
    -- Missed slots: the first slot after now that keeps the offset.
    local aligned = math.floor(now / every) * every + offset
    if aligned <= now then
      nextMillis = aligned + every
    else
      nextMillis = aligned
    end
  end
  nextMillis = math.floor(nextMillis)
end
if not nextMillis then
  return ""
end

local state = readQueueState(metaKey, activeKey, compat)
local nextId = "repeat:" .. schedulerId .. ":" .. nextMillis
local nextKey = schedulerKey .. ":" .. nextMillis
if rcall("EXISTS", nextKey) == 1 then
  emitEvent(eventsKey, state.maxEvents, "duplicated", "jobId", nextId)
  return ""
end

rcall("ZADD", repeatKey, nextMillis, schedulerId)
rcall("HINCRBY", schedulerKey, "ic", 1)
rcall("INCR", idKey)

local data = attrs[2]
if not state.v6Pause then
  -- BullMQ 5 keeps the template data on the scheduler, taken from the job when missing.
  data = data or producer[2] or "{}"
  if data ~= "{}" then
    rcall("HSET", schedulerKey, "data", data)
  end
end
data = data or "{}"

local delay = nextMillis - now
if delay < 0 then
  delay = 0
end
opts["jobId"] = nextId
opts["delay"] = delay
opts["timestamp"] = now
opts["repeatJobKey"] = schedulerId
if patternNext and not every then
  opts["prevMillis"] = nextMillis
else
  opts["prevMillis"] = nil
end
if opts["attempts"] == nil then
  opts["attempts"] = 0
end
repeatOpts["immediately"] = nil
repeatOpts["count"] = nextCount
local keptOffset = tonumber(repeatOpts["offset"])
if not (repeatOpts["every"] and keptOffset and keptOffset ~= 0) then
  repeatOpts["offset"] = nil
end

local name = attrs[1] or producer[3] or ""
local priority = tonumber(opts["priority"]) or 0
rcall("HMSET", nextKey, "name", name, "data", data, "opts", cjson.encode(opts),
      "timestamp", now, "delay", delay, "priority", priority, "rjk", schedulerId)
emitEvent(eventsKey, state.maxEvents, "added", "jobId", nextId, "name", name)

if delay > 0 then
  rcall("ZADD", delayedKey, delayedScore(delayedKey, nextMillis), nextId)
  emitEvent(eventsKey, state.maxEvents, "delayed", "jobId", nextId, "delay", nextMillis)
  addDelayMarker(markerKey, delayedKey)
else
  local pushCmd = opts["lifo"] and "RPUSH" or "LPUSH"
  pushReady(readyListFor(waitKey, pausedKey, state), prioritizedKey, pcKey, nextId, priority,
            pushCmd)
  addWakeMarker(markerKey, state)
  emitEvent(eventsKey, state.maxEvents, "waiting", "jobId", nextId)
end

if not state.v6Pause then
  rcall("HSET", producerKey, "nrjid", nextId)
end
return nextId
