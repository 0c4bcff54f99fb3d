--[[
  The claim of one job for one token (moveToActive, and fetch-next after a single finish or a
  move to delayed): includes/claimJobs with one token.

  KEYS: none (the caller passes its key table, as to includes/claimJobs)
  ARGV: none
  Returns: nil when there is no job and no delayed job (the queue is drained); otherwise
           {fields|0, jobId|0, rateLimitTtlMs, nextDelayedDueMs} as includes/claimJobs
  Emits: waiting (promotions), active (prev waiting)
  Compat: as includes/claimJobs.
]]
--!include claimJobs

local function claimNextJob(k, baseKey, now, token, lockDuration, workerName, limitMax,
                            limitDuration, compat, knownState)
  return claimJobs(k, baseKey, now, {token}, lockDuration, workerName, limitMax, limitDuration,
                   compat, knownState)[1] or nil
end
