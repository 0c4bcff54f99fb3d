--[[
  The body of moveToFinished (one job) and moveToFinishedBatch (several): each job is finished
  in the order given (includes/finishJob), then the jobs that asked for fetch-next and were
  finished claim their next jobs together, one per job's token (includes/claimJobs), and when
  a finished job got no next job and the queue is empty, `drained` is announced once.

  Each job gets the calls, fields and events a call of its own gives it, in the same order
  for that job (its end, then its slot's next job's `active`). In a batch the ends of all its
  jobs come before the claims, so the stream reads completed 1, completed 2, ..., active,
  active, ... rather than interleaved; no job's own sequence changes.

  KEYS: none (the caller passes its key table `k`, as to includes/finishJob)
  ARGV: none. `jobs` are the requests (includes/readFinishJob), `c` the shared settings
        (includes/readFinishShared), `knownState` a queue state read once for the call (nil:
        each finish reads it after leaving `active`)
  Returns: one result per job, in order: 0 (finished, nothing claimed), a claim table
           {fields, jobId, 0, 0} or {0, 0, ttl, 0} / {0, 0, 0, due} / {0, 0, 0, 0} (see
           includes/claimJobs), or a negative code (see moveToFinished's header)
  Emits: per job as includes/finishJob; then waiting (promotions) and active per claimed
         job; then drained
  Compat: as moveToFinished (BullMQ 5 and 6).
]]
--!include finishJob
--!include claimJobs
--!include emitEvent

local function finishJobs(k, jobs, c, knownState)
  local results, state = {}, knownState
  -- The claim's time (`processedOn` of the jobs it claims) is the latest of the finishes'.
  local claimFor, tokens, claimNow = {}, {}, 0
  for i, job in ipairs(jobs) do
    results[i], state = finishJob(k, job, c, state)
    if results[i] == 0 and job.fetchNext then
      claimFor[#claimFor + 1] = i
      tokens[#tokens + 1] = job.token
      claimNow = math.max(claimNow, job.now)
    end
  end

  if #tokens > 0 then
    local claimed = claimJobs(k, c.baseKey, claimNow, tokens, c.lockDuration,
                              c.workerName, c.limitMax, c.limitDuration, c.compat, state)
    for n, i in ipairs(claimFor) do
      if claimed[n] then
        results[i] = claimed[n]
      end
    end
  end

  for _, result in ipairs(results) do
    if result == 0 then
      if rcall("LLEN", k.wait) == 0 and rcall("LLEN", k.active) == 0 and
         rcall("ZCARD", k.prioritized) == 0 then
        emitEvent(k.events, state.maxEvents, "drained")
      end
      break
    end
  end
  return results
end
