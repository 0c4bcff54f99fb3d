--[[
  Releases a job's lock if `token` owns it, and forgets the job as a stalled candidate.
  The token "0" skips the check (administrative moves). A lock owned by another token is left
  exactly as it is (value and TTL): it is its owner's.

  KEYS: none (job key and stalled key are arguments)
  ARGV: none
  Returns: 0 released, -2 no lock, -6 the lock belongs to another token
  Emits: none
  Compat: same as BullMQ's removeLock.
]]
local function releaseLock(jobKey, stalledKey, token, jobId)
  if token == "0" then
    return 0
  end
  local lockKey = jobKey .. ":lock"
  local owner = rcall("GET", lockKey)
  if owner == token then
    rcall("DEL", lockKey)
    rcall("SREM", stalledKey, jobId)
    return 0
  end
  if owner then
    return -6
  end
  return -2
end
