--[[
  A child with `failParentOnFailure` failed for good: its parent must fail too. The parent
  is not failed here (it may be another queue's job, and failing needs its worker's retention
  and events); instead it gets `defa` = "child <childKey> failed", the deferred failure
  every BullMQ worker (and ours, at claim) turns into an unrecoverable failure with exactly
  that reason. A parent waiting in `waiting-children`, or in `delayed` (its delay reset to
  0), is moved to its ready list so a worker picks it up now; a parent elsewhere (active,
  waiting) just gets `defa`, unless it already failed.

  KEYS: none (every key is derived from parentQueueKey, the parent's `P:Q`)
  ARGV: none
  Returns: nothing
  Emits: what moveParentToWait emits, when the parent was parked
  Compat: BullMQ 5 and 6 (same reason text, same moves).
]]
--!include moveParentToWait

local function deferParentFailure(parentQueueKey, parentKey, parentId, childKey, now, compat)
  if rcall("EXISTS", parentKey) == 0 then
    return
  end
  local reason = "child " .. childKey .. " failed"
  local parkedIn = nil
  if rcall("ZSCORE", parentQueueKey .. ":waiting-children", parentId) then
    parkedIn = parentQueueKey .. ":waiting-children"
  elseif rcall("ZSCORE", parentQueueKey .. ":delayed", parentId) then
    parkedIn = parentQueueKey .. ":delayed"
    rcall("HSET", parentKey, "delay", 0)
  end
  if parkedIn then
    rcall("ZREM", parkedIn, parentId)
    rcall("HSET", parentKey, "defa", reason)
    moveParentToWait(parentQueueKey, parentKey, parentId, now, compat)
  elseif not rcall("ZSCORE", parentQueueKey .. ":failed", parentId) then
    rcall("HSET", parentKey, "defa", reason)
  end
end
