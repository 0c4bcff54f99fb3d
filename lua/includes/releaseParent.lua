--[[
  Releases a parent that sits in its queue's `waiting-children`: takes it out and makes it
  ready (moveParentToWait). A parent that is elsewhere (still active, already released,
  finished) or gone is left alone, so calling this twice is harmless.

  KEYS: none (every key is derived from parentQueueKey, the parent's `P:Q`)
  ARGV: none
  Returns: true when the parent was released
  Emits: what moveParentToWait emits, when released
  Compat: BullMQ 5 and 6 (their moveParentToWaitIfNeeded).
]]
--!include moveParentToWait

local function releaseParent(parentQueueKey, parentKey, parentId, now, compat)
  if rcall("EXISTS", parentKey) == 0 then
    return false
  end
  if rcall("ZREM", parentQueueKey .. ":waiting-children", parentId) == 0 then
    return false
  end
  moveParentToWait(parentQueueKey, parentKey, parentId, now, compat)
  return true
end
