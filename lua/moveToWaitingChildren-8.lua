--[[
  A processor parks its job until its children are done (Node's `job.moveToWaitingChildren`
  followed by `WaitingChildrenError`): when the job has a pending child (`childKey` among its
  `:dependencies`, or any child when `childKey` is ""), its lock is released and it moves from
  `active` to `waiting-children`, scored by now. The attempt is not counted (`atm` untouched).
  The last child to finish releases it to its ready list (see includes/updateParentOnFinish),
  and its processor runs again from the start.

  With nothing pending the job stays active and locked and the processor carries on. A job
  with a failed `failParentOnFailure` child is refused (-9): it cannot succeed any more.

  KEYS:
    [1] job - P:Q:<id>
    [2] dependencies - P:Q:<id>:dependencies
    [3] unsuccessful - P:Q:<id>:unsuccessful
    [4] active - P:Q:active
    [5] waiting-children - P:Q:waiting-children
    [6] stalled - P:Q:stalled
    [7] events - P:Q:events
    [8] meta - P:Q:meta
  ARGV:
    [1] jobId
    [2] token - the lock token that claimed the job
    [3] now - ms since epoch; the waiting-children score
    [4] childKey - a child's full job key (P:Q2:<childId>) to wait for, "" for any child
  Returns:
    0 moved to waiting-children
    1 nothing pending: the job stays active
    -1 the job hash is missing
    -2 the lock is missing
    -3 the job is not in `active`
    -6 the lock belongs to another token
    -9 the job has failed children
  Emits: waiting-children (prev active)
  Compat: the same checks, order and state move as BullMQ 5 and 6's moveToWaitingChildren
          (which checks pending children before the lock, so "nothing pending" needs no lock).
]]
local rcall = redis.call
local jobKey = KEYS[1]
local dependenciesKey = KEYS[2]
local unsuccessfulKey = KEYS[3]
local activeKey = KEYS[4]
local waitingChildrenKey = KEYS[5]
local stalledKey = KEYS[6]
local eventsKey = KEYS[7]
local metaKey = KEYS[8]
local jobId = ARGV[1]
local token = ARGV[2]
local now = tonumber(ARGV[3])
local childKey = ARGV[4]

--!include leaveActive
--!include emitEvent

if rcall("EXISTS", jobKey) == 0 then
  return -1
end
if rcall("ZCARD", unsuccessfulKey) ~= 0 then
  return -9
end
local pending
if childKey ~= "" then
  pending = rcall("SISMEMBER", dependenciesKey, childKey) == 1
else
  pending = rcall("SCARD", dependenciesKey) > 0
end
if not pending then
  return 1
end
local left = leaveActive(jobKey, activeKey, stalledKey, token, jobId)
if left < 0 then
  return left
end
rcall("ZADD", waitingChildrenKey, now, jobId)
local maxEvents = tonumber(rcall("HGET", metaKey, "opts.maxLenEvents")) or 10000
emitEvent(eventsKey, maxEvents, "waiting-children", "jobId", jobId, "prev", "active")
return 0
