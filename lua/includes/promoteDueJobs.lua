--[[
  Moves delayed jobs whose due time has come (score <= (now+1)*4096-1) to the ready list or
  `prioritized`, at most 1000 per call. There is no scheduler process: every claim promotes.

  KEYS: none (all keys are arguments)
  ARGV: none
  Returns: nothing
  Emits: waiting (prev delayed) for each promoted job
  Compat: same as BullMQ 5 and 6 (ready list chosen by readyListFor).
]]
--!include emitEvent
--!include addWakeMarker
--!include readyListFor
--!include pushReady

local function promoteDueJobs(delayedKey, waitKey, pausedKey, prioritizedKey, pcKey, markerKey,
                              eventsKey, baseKey, now, state)
  local due = rcall("ZRANGEBYSCORE", delayedKey, "0", (now + 1) * 4096 - 1, "LIMIT", "0", "1000")
  if #due == 0 then
    return
  end
  local listKey = readyListFor(waitKey, pausedKey, state)
  for _, jobId in ipairs(due) do
    rcall("ZREM", delayedKey, jobId)
    local jobKey = baseKey .. jobId
    local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
    pushReady(listKey, prioritizedKey, pcKey, jobId, priority, "LPUSH")
    emitEvent(eventsKey, state.maxEvents, "waiting", "jobId", jobId, "prev", "delayed")
    rcall("HSET", jobKey, "delay", 0)
  end
  addWakeMarker(markerKey, state)
end
