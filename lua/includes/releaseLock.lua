--[[
  Releases a job's lock if `token` owns it, and forgets the job as a stalled candidate.
  The token "0" skips the check (administrative moves). GETDEL takes the lock in one call; in
  the rare case it belonged to another token it is put back for `lockDuration` ms (its owner's
  next renewal restores its own TTL).

  KEYS: none (job key and stalled key are arguments)
  ARGV: none
  Returns: 0 released, -2 no lock, -6 the lock belongs to another token
  Emits: none
  Compat: same as BullMQ's removeLock.
]]
local function releaseLock(jobKey, stalledKey, token, jobId, lockDuration)
  if token == "0" then
    return 0
  end
  local lockKey = jobKey .. ":lock"
  local owner = rcall("GETDEL", lockKey)
  if owner == token then
    rcall("SREM", stalledKey, jobId)
    return 0
  end
  if owner then
    rcall("SET", lockKey, owner, "PX", lockDuration)
    return -6
  end
  return -2
end
