--[[
  A child is being deleted by retention (`removeOnComplete` / `removeOnFail`, at once or when
  trimmed later): if it is still one of its parent's pending `:dependencies` (a failed child
  without a failure flag), it stops being one, and when it was the last, the parent leaves
  its queue's `waiting-children` for the front of that queue's ready list.

  As BullMQ does on this path, the parent goes to the ready list whatever its priority or
  delay, and the wake marker follows that queue's pause and global concurrency. With
  `parentKey` nil the child's hash is read for it (the caller deletes the hash afterwards),
  and a parent that no longer exists is left alone. The parent's `P:Q:` and id are read off
  its key (the id is the text after the last ":").

  KEYS: none (every key is derived from the parent's key)
  ARGV: none
  Returns: true when the child was a pending dependency
  Emits: on the parent's queue: waiting (prev waiting-children) when the parent was released
  Compat: BullMQ 5 and 6 (their removeParentDependencyKey, "soft" mode); the ready list
          follows the parent queue's major (readyListFor).
]]
--!include readQueueState
--!include readyListFor
--!include addWakeMarker
--!include emitEvent

local function unlinkFromParent(childKey, parentKey, compat)
  if not parentKey then
    parentKey = rcall("HGET", childKey, "parentKey")
    if not parentKey or parentKey == "" or rcall("EXISTS", parentKey) == 0 then
      return false
    end
  end
  local deps = parentKey .. ":dependencies"
  if rcall("SREM", deps, childKey) == 0 then
    return false
  end
  if rcall("SCARD", deps) == 0 then
    local parentId = string.match(parentKey, ".*:(.*)")
    if parentId then
      local q = string.sub(parentKey, 1, #parentKey - #parentId)
      if rcall("ZREM", q .. "waiting-children", parentId) == 1 then
        local state = readQueueState(q .. "meta", q .. "active", compat)
        rcall("RPUSH", readyListFor(q .. "wait", q .. "paused", state), parentId)
        addWakeMarker(q .. "marker", state)
        emitEvent(q .. "events", state.maxEvents, "waiting", "jobId", parentId, "prev",
                  "waiting-children")
      end
    end
  end
  return true
end
