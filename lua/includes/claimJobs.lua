--[[
  The claim of up to one job per token, in one pass: promote due delayed jobs once, respect
  pause, global concurrency and rate limits once, take the jobs (from the right end of `wait`,
  then the lowest `prioritized` scores) with one pop and one push, then lock, stamp and
  announce each job, and re-arm the marker once. A batch of finishes with fetch-next claims
  all its slots' next jobs here, so the per-claim work that does not depend on the job is
  paid once per batch.

  Each job gets exactly what a claim of its own gives it (lock, `processedOn`, `ats`, `pb`,
  the `active` event), and the queue ends in the state as many claims one after the other
  leave it: `active` holds the jobs in the same order, the limiter counts each of them.

  KEYS: none (the caller passes a table of its keys: wait, active, prioritized, events,
        limiter, delayed, paused, meta, pc, marker). `compat` is the worker's BULLMQ_COMPAT
        (see includes/readQueueState). A caller that has just read the queue state (after its
        own changes to `active`) passes it as `knownState` to save a read.
  ARGV: none
  Returns: a table with one entry per token, in order. The first tokens get a job each:
           {fields, jobId, 0, 0}, where fields are the values of JOB_FIELDS (name, data, opts,
           timestamp, atm, attemptsMade, ats, stc, defa, stacktrace, rjk, deid, parentKey,
           parent), in order, nil for absent ones (the last three are read here so that the
           finish need not read them again). Each token left without a job gets what its own
           claim would have got: {0, 0, ttl, 0} rate limited, {0, 0, 0, 0} paused or at the
           global concurrency, {0, 0, 0, due} no job ready but a delayed one due at `due`,
           or false: no job and no delayed job (the queue is drained).
  Emits: waiting (promotions), then active (prev waiting) for each job claimed
  Compat: BullMQ's moveToActive claims one job and returns HGETALL; the fields and events each
          job gets are the same, and Node never sees the reply.
]]
--!include readQueueState
--!include emitEvent
--!include promoteDueJobs

local function claimJobs(k, baseKey, now, tokens, lockDuration, workerName, limitMax,
                         limitDuration, compat, knownState)
  local JOB_FIELDS = {"name", "data", "opts", "timestamp", "atm", "attemptsMade", "ats", "stc",
                      "defa", "stacktrace", "rjk", "deid", "parentKey", "parent"}
  local results = {}
  local state = knownState or readQueueState(k.meta, k.active, compat)
  promoteDueJobs(k.delayed, k.wait, k.paused, k.prioritized, k.pc, k.marker, k.events, baseKey,
                 now, state)

  -- `rest`: the answer for the tokens left without a job, once it is known. `used`: the
  -- limiter's count, kept up to date here so that it is read once.
  local wanted, rest, used = #tokens, nil, 0
  local maxJobs = state.max or limitMax
  if maxJobs then
    used = tonumber(rcall("GET", k.limiter)) or 0
    if used >= maxJobs then
      local ttl = rcall("PTTL", k.limiter)
      if ttl > 0 then
        rest = {0, 0, ttl, 0}
      else
        -- Used up but without expiry: a claim resets it.
        rcall("DEL", k.limiter)
        used = 0
      end
    end
    wanted = rest and 0 or math.min(wanted, maxJobs - used)
  end
  if not rest and state.paused then
    rest = {0, 0, 0, 0}
    wanted = 0
  end
  if not rest and state.concurrency then
    wanted = math.min(wanted, state.concurrency - rcall("LLEN", k.active))
  end

  -- One pop for the batch; a single claim keeps the one-command RPOPLPUSH.
  local ids = {}
  if wanted == 1 then
    local jobId = rcall("RPOPLPUSH", k.wait, k.active)
    if jobId and string.sub(jobId, 1, 2) == "0:" then
      -- A marker left in `wait` by BullMQ 4; drop it and look again.
      rcall("LREM", k.active, 1, jobId)
      jobId = rcall("RPOPLPUSH", k.wait, k.active)
    end
    ids[1] = jobId or nil
  elseif wanted > 1 then
    -- A second pop, once, for as many jobs as the first found BullMQ 4 markers (dropped).
    local pop = wanted
    for _ = 1, 2 do
      local markers = 0
      for _, jobId in ipairs(rcall("RPOP", k.wait, pop) or {}) do
        if string.sub(jobId, 1, 2) == "0:" then
          markers = markers + 1
        else
          ids[#ids + 1] = jobId
        end
      end
      if markers == 0 then
        break
      end
      pop = markers
    end
    if #ids > 0 then
      rcall("LPUSH", k.active, unpack(ids))
    end
  end
  if #ids < wanted then
    local popped = rcall("ZPOPMIN", k.prioritized, wanted - #ids)
    if popped[1] then
      local fromPrioritized = {}
      for i = 1, #popped, 2 do
        fromPrioritized[#fromPrioritized + 1] = popped[i]
        ids[#ids + 1] = popped[i]
      end
      rcall("LPUSH", k.active, unpack(fromPrioritized))
    else
      rcall("DEL", k.pc)
    end
  end

  if #ids > 0 then
    if maxJobs then
      used = rcall("INCRBY", k.limiter, #ids)
      if used == #ids then
        local windowMs = limitDuration or state.duration or 0
        rcall("PEXPIRE", k.limiter, math.floor(math.abs(windowMs)))
      end
    end
    -- Numbers given to redis.call are formatted into text on every call: once here instead.
    local nowText = tostring(now)
    for i, jobId in ipairs(ids) do
      local jobKey = baseKey .. jobId
      rcall("SET", jobKey .. ":lock", tokens[i], "PX", lockDuration)
      emitEvent(k.events, state.maxEvents, "active", "jobId", jobId, "prev", "waiting")
      -- Read first, then stamp: we hold the lock, so nobody else changes `ats` in between,
      -- and one HSET replaces an HSET plus an HINCRBY.
      local fields = rcall("HMGET", jobKey, unpack(JOB_FIELDS))
      local started = tostring((tonumber(fields[7]) or 0) + 1)
      fields[7] = started
      if workerName then
        rcall("HSET", jobKey, "processedOn", nowText, "ats", started, "pb", workerName)
      else
        rcall("HSET", jobKey, "processedOn", nowText, "ats", started)
      end
      results[i] = {fields, jobId, 0, 0}
    end
    -- Wake the next idle worker: there may be more work.
    rcall("ZADD", k.marker, "0", "0")
  end
  if #ids < #tokens and not rest then
    -- What stopped the rest, in the order a claim of its own asks.
    local ttl = (maxJobs and used >= maxJobs) and rcall("PTTL", k.limiter) or 0
    if ttl > 0 then
      rest = {0, 0, ttl, 0}
    elseif #ids >= wanted then
      -- Stopped by the global concurrency (or a limiter without expiry), jobs still ready.
      rest = {0, 0, 0, 0}
    else
      local first = rcall("ZRANGE", k.delayed, 0, 0, "WITHSCORES")
      rest = first[2] and {0, 0, 0, tonumber(first[2]) / 4096} or false
    end
  end
  for i = #ids + 1, #tokens do
    results[i] = rest
  end
  return results
end
