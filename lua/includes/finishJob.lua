--[[
  One job's finish: it leaves `active` for its finished set (or is deleted), its lock is
  released, `atm` counts the attempt, flows and deduplication hear of it, and the outcome is
  announced. The claim of the slot's next job is not here: includes/finishJobs claims for all
  the jobs of a call at once, after their finishes.

  KEYS: none (the caller passes its key table `k`: wait, active, prioritized, events,
        stalled, limiter, delayed, paused, meta, pc, marker)
  ARGV: none. `j` is the job's request: id, key, now, field ("returnvalue"/"failedReason"),
        value, target ("completed"/"failed"), finishedKey, fetchNext, token, keepCount,
        keepAge, keepLimit, attempts, stacktrace ("" to leave it), attemptsMade (this one
        included), dedupId (or nil), hasParent. `c` holds what a worker's calls share:
        baseKey, lockDuration, workerName, limitMax, limitDuration, compat, metricsPoints.
        `knownState` is a queue state a batch read once (nil: read it here, after leaving
        `active`); a batch's state has its global concurrency re-checked here, as `active`
        has changed since.
  Returns: 0 (finished) or a negative code (see moveToFinished's header); and the queue
           state it used, for the next job of a batch and the claim
  Emits: as moveToFinished, but for the claim's and the drained events
  Compat: as moveToFinished (BullMQ 5 and 6).
]]
--!include readQueueState
--!include emitEvent
--!include releaseLock
--!include removeJobKeys
--!include trimFinishedJobs
--!include requeueDeduplicatedNext
--!include collectMetrics
--!include updateParentOnFinish
--!include unlinkFromParent

local function finishJob(k, j, c, knownState)
  local jobKey, jobId, now, target = j.key, j.id, j.now, j.target
  if target == "completed" and
     rcall("EXISTS", jobKey .. ":dependencies", jobKey .. ":unsuccessful") > 0 then
    if rcall("SCARD", jobKey .. ":dependencies") ~= 0 then
      return -4, knownState
    end
    if rcall("ZCARD", jobKey .. ":unsuccessful") ~= 0 then
      return -9, knownState
    end
  end
  -- The lock proves the job is still there (Node's Queue.remove refuses a locked job), so the
  -- job hash is only looked at when the lock is missing, to tell a deleted job apart.
  local released = releaseLock(jobKey, k.stalled, j.token, jobId)
  if released < 0 then
    if released == -2 and rcall("EXISTS", jobKey) == 0 then
      return -1, knownState
    end
    return released, knownState
  end
  if rcall("LREM", k.active, "-1", jobId) == 0 then
    return -3, knownState
  end
  if j.stacktrace ~= "" then
    rcall("HSET", jobKey, "stacktrace", j.stacktrace)
  end

  local state = knownState
  if not state then
    state = readQueueState(k.meta, k.active, c.compat)
  elseif state.concurrency then
    state.maxed = rcall("LLEN", k.active) >= state.concurrency
  end

  local dedupId = j.dedupId
  if dedupId then
    local dedupKey = c.baseKey .. "de:" .. dedupId
    local ttl = rcall("PTTL", dedupKey)
    if ttl == 0 or (ttl == -1 and rcall("GET", dedupKey) == jobId) then
      rcall("DEL", dedupKey)
    end
    requeueDeduplicatedNext(k, c.baseKey, dedupId, now, state)
  end

  -- Flows: the parent hears about its child before retention may delete the child. The
  -- fields are read again here, not passed: job.removeChildDependency() may drop them while
  -- the child runs.
  local parentKey
  if j.hasParent then
    local parentFields = rcall("HMGET", jobKey, "parentKey", "parent")
    parentKey = parentFields[1] or nil
    if parentKey or parentFields[2] then
      updateParentOnFinish(jobKey, parentKey, parentFields[2] or nil, target == "completed",
                           j.value, now, c.compat)
    end
  end

  if j.keepCount ~= 0 then
    rcall("ZADD", j.finishedKey, j.nowText, jobId)
    rcall("HSET", jobKey, j.field, j.value, "finishedOn", j.nowText, "atm", j.attemptsMade)
    if target == "failed" then
      rcall("HDEL", jobKey, "defa")
    end
    trimFinishedJobs(j.finishedKey, c.baseKey, now, j.keepCount, j.keepAge, j.keepLimit,
                     c.compat)
  else
    removeJobKeys(jobKey)
    if parentKey then
      unlinkFromParent(jobKey, parentKey, c.compat)
    end
  end

  emitEvent(k.events, state.maxEvents, target, "jobId", jobId, j.field, j.value, "prev",
            "active")
  if target == "failed" and j.attemptsMade >= j.attempts then
    emitEvent(k.events, state.maxEvents, "retries-exhausted", "jobId", jobId, "attemptsMade",
              j.attemptsMade)
  end
  if c.metricsPoints and c.metricsPoints > 0 then
    collectMetrics(c.baseKey .. "metrics:" .. target, now, c.metricsPoints)
  end

  return 0, state
end
