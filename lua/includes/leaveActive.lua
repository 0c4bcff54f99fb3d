--[[
  The common start of every script that ends an attempt or hands a job back: the job must
  exist, the caller's token must own its lock (released here), and the job must be in
  `active` (removed here). Nothing is changed when a check fails.

  KEYS: none (job, active and stalled keys are arguments)
  ARGV: none
  Returns: 0 the job left active, -1 no job hash, -2 no lock, -3 not in active, -6 the lock
           belongs to another token
  Emits: none
  Compat: the same checks, in the same order, as BullMQ's retryJob and moveToDelayed.
]]
--!include releaseLock

local function leaveActive(jobKey, activeKey, stalledKey, token, jobId)
  if rcall("EXISTS", jobKey) == 0 then
    return -1
  end
  local released = releaseLock(jobKey, stalledKey, token, jobId)
  if released < 0 then
    return released
  end
  if rcall("LREM", activeKey, -1, jobId) == 0 then
    return -3
  end
  return 0
end
