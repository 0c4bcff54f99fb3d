--[[
  Stalled-job recovery. A job is stalled when it was in `active` at the previous check and is
  still there now without a lock (its worker died or lost Redis for longer than the lock).
  Stalled jobs go back to the front of the ready list; `stc` counts the stall, and a job that
  stalled more than `maxStalledCount` times gets `defa` so the next worker to claim it fails
  it (BullMQ's lazy failure). Then every job now in `active` becomes a candidate for the next
  check. The `stalled-check` key makes one worker per interval do the work.

  KEYS:
    [1] stalled - P:Q:stalled
    [2] wait - P:Q:wait
    [3] active - P:Q:active
    [4] stalled-check - P:Q:stalled-check
    [5] meta - P:Q:meta
    [6] paused - P:Q:paused
    [7] marker - P:Q:marker
    [8] events - P:Q:events
    [9] repeat - P:Q:repeat
  ARGV:
    [1] maxStalledCount
    [2] base key - "P:Q:"
    [3] now - ms since epoch
    [4] stalledInterval - ms; the throttle key lives this long
    [5] compat - BULLMQ_COMPAT: "auto", "5" or "6" (paused-queue rule)
  Returns: the ids moved back to wait (empty when none, or when another worker checked recently)
  Emits: waiting (prev active), stalled
  Compat: BullMQ 5.53.2+ and 6 (lazy `defa` failure); paused jobs: see includes/readyListFor.
]]
local rcall = redis.call
local stalledKey = KEYS[1]
local waitKey = KEYS[2]
local activeKey = KEYS[3]
local checkKey = KEYS[4]
local metaKey = KEYS[5]
local pausedKey = KEYS[6]
local markerKey = KEYS[7]
local eventsKey = KEYS[8]
local repeatKey = KEYS[9]
local maxStalledCount = tonumber(ARGV[1])
local baseKey = ARGV[2]
local now = ARGV[3]
local interval = tonumber(ARGV[4])
local compat = ARGV[5]

--!include readQueueState
--!include emitEvent
--!include addWakeMarker
--!include readyListFor

if rcall("EXISTS", checkKey) == 1 then
  return {}
end
rcall("SET", checkKey, now, "PX", interval)

local state = readQueueState(metaKey, activeKey, compat)
local moved = {}
local candidates = rcall("SMEMBERS", stalledKey)
if #candidates > 0 then
  rcall("DEL", stalledKey)
  local listKey = readyListFor(waitKey, pausedKey, state)
  for _, jobId in ipairs(candidates) do
    if string.sub(jobId, 1, 2) == "0:" then
      rcall("LREM", activeKey, 1, jobId)
    else
      local jobKey = baseKey .. jobId
      if rcall("EXISTS", jobKey .. ":lock") == 0 and rcall("LREM", activeKey, 1, jobId) > 0 then
        local stalls = rcall("HINCRBY", jobKey, "stc", 1)
        local schedulerId = rcall("HGET", jobKey, "rjk")
        local scheduled = schedulerId and
          (rcall("EXISTS", repeatKey .. ":" .. schedulerId) == 1 or
           rcall("ZSCORE", repeatKey, schedulerId) ~= false)
        if stalls > maxStalledCount and not scheduled then
          rcall("HSET", jobKey, "defa", "job stalled more than allowable limit")
        end
        rcall("RPUSH", listKey, jobId)
        addWakeMarker(markerKey, state)
        emitEvent(eventsKey, state.maxEvents, "waiting", "jobId", jobId, "prev", "active")
        emitEvent(eventsKey, state.maxEvents, "stalled", "jobId", jobId)
        moved[#moved + 1] = jobId
      end
    end
  end
end

local active = rcall("LRANGE", activeKey, 0, -1)
for from = 1, #active, 7000 do
  rcall("SADD", stalledKey, unpack(active, from, math.min(from + 6999, #active)))
end
return moved
