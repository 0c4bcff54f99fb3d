--[[
  The claim: promote due delayed jobs, respect pause, global concurrency and rate limits, take
  the next job (wait first, from its right end; then the lowest `prioritized` score), lock it
  with `token`, stamp it and return the fields a worker needs.

  KEYS: none (the caller passes a table of its keys: wait, active, prioritized, events,
        limiter, delayed, paused, meta, pc, marker). `compat` is the worker's BULLMQ_COMPAT
        (see includes/readQueueState). A caller that has just read the queue state (after its
        own changes to `active`) passes it as `knownState` to save a read.
  ARGV: none
  Returns: nil when there is no job and no delayed job (the queue is drained); otherwise
           {fields|0, jobId|0, rateLimitTtlMs, nextDelayedDueMs} where fields are the values of
           JOB_FIELDS (name, data, opts, timestamp, atm, attemptsMade, ats, stc, defa,
           stacktrace, rjk, deid, parentKey, parent), in order, nil for absent ones; the
           last three are read here so that the finish need not read them again
  Emits: waiting (promotions), active (prev waiting)
  Compat: BullMQ's moveToActive returns HGETALL; we return a fixed HMGET, which Node never sees.
]]
--!include readQueueState
--!include emitEvent
--!include promoteDueJobs

local function claimNextJob(k, baseKey, now, token, lockDuration, workerName, limitMax,
                            limitDuration, compat, knownState)
  local JOB_FIELDS = {"name", "data", "opts", "timestamp", "atm", "attemptsMade", "ats", "stc",
                      "defa", "stacktrace", "rjk", "deid", "parentKey", "parent"}
  local state = knownState or readQueueState(k.meta, k.active, compat)
  promoteDueJobs(k.delayed, k.wait, k.paused, k.prioritized, k.pc, k.marker, k.events, baseKey,
                 now, state)

  local maxJobs = state.max or limitMax
  if maxJobs then
    local used = tonumber(rcall("GET", k.limiter)) or 0
    if used >= maxJobs then
      local ttl = rcall("PTTL", k.limiter)
      if ttl > 0 then
        return {0, 0, ttl, 0}
      end
      rcall("DEL", k.limiter)
    end
  end

  if state.paused or state.maxed then
    return {0, 0, 0, 0}
  end

  local jobId = rcall("RPOPLPUSH", k.wait, k.active)
  if jobId and string.sub(jobId, 1, 2) == "0:" then
    -- A marker left in `wait` by BullMQ 4; drop it and look again.
    rcall("LREM", k.active, 1, jobId)
    jobId = rcall("RPOPLPUSH", k.wait, k.active)
  end
  if not jobId then
    local popped = rcall("ZPOPMIN", k.prioritized)
    if popped[1] then
      jobId = popped[1]
      rcall("LPUSH", k.active, jobId)
    else
      rcall("DEL", k.pc)
    end
  end

  if jobId then
    if maxJobs then
      local used = rcall("INCR", k.limiter)
      if used == 1 then
        local windowMs = limitDuration or state.duration or 0
        rcall("PEXPIRE", k.limiter, math.floor(math.abs(windowMs)))
      end
    end
    local jobKey = baseKey .. jobId
    rcall("SET", jobKey .. ":lock", token, "PX", lockDuration)
    emitEvent(k.events, state.maxEvents, "active", "jobId", jobId, "prev", "waiting")
    -- Read first, then stamp: we hold the lock, so nobody else changes `ats` in between, and
    -- one HSET replaces an HSET plus an HINCRBY.
    local fields = rcall("HMGET", jobKey, unpack(JOB_FIELDS))
    local started = (tonumber(fields[7]) or 0) + 1
    fields[7] = tostring(started)
    if workerName then
      rcall("HSET", jobKey, "processedOn", now, "ats", started, "pb", workerName)
    else
      rcall("HSET", jobKey, "processedOn", now, "ats", started)
    end
    -- Wake the next idle worker: there may be more work.
    rcall("ZADD", k.marker, 0, "0")
    return {fields, jobId, 0, 0}
  end

  local first = rcall("ZRANGE", k.delayed, 0, 0, "WITHSCORES")
  if first[2] then
    return {0, 0, 0, tonumber(first[2]) / 4096}
  end
  return nil
end
