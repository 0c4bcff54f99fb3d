--[[
  Makes a parent job ready again once its children no longer hold it back. The parent lives
  in its own queue, which may be another queue or even another prefix than the finishing
  child's, so every key is derived from `parentQueueKey` (the parent's `P:Q`, from the child's
  `parent.queueKey`), and that queue's own meta decides the pause rule, the global
  concurrency and the stream length.

  Where it goes, as in BullMQ: a parent with a `delay` to that queue's `delayed`, due
  `now + delay` and scored `due * 4096` (BullMQ adds no sequence number here); a parent with a
  priority to `prioritized`; any other to the front of the ready list (RPUSH), which is
  `paused` under the BullMQ 5 rule while that queue is paused. The wake marker is written
  unless that queue is paused or at its global concurrency.

  The caller has already taken the parent out of `waiting-children` (or `delayed`).

  KEYS: none (every key is derived from parentQueueKey)
  ARGV: none
  Returns: nothing
  Emits: on the parent's queue: delayed (jobId, delay = due ms) for a delayed parent,
         otherwise waiting (prev waiting-children)
  Compat: BullMQ 5 and 6; the ready list follows the parent queue's major (readyListFor).
]]
--!include readQueueState
--!include emitEvent
--!include addDelayMarker
--!include addWakeMarker
--!include pushReady
--!include readyListFor

local function moveParentToWait(parentQueueKey, parentKey, parentId, now, compat)
  local q = parentQueueKey .. ":"
  local state = readQueueState(q .. "meta", q .. "active", compat)
  local attrs = rcall("HMGET", parentKey, "priority", "delay")
  local priority = tonumber(attrs[1]) or 0
  local delay = tonumber(attrs[2]) or 0
  if delay > 0 then
    local due = now + delay
    rcall("ZADD", q .. "delayed", due * 4096, parentId)
    emitEvent(q .. "events", state.maxEvents, "delayed", "jobId", parentId, "delay", due)
    addDelayMarker(q .. "marker", q .. "delayed")
    return
  end
  pushReady(readyListFor(q .. "wait", q .. "paused", state), q .. "prioritized", q .. "pc",
            parentId, priority, "RPUSH")
  addWakeMarker(q .. "marker", state)
  emitEvent(q .. "events", state.maxEvents, "waiting", "jobId", parentId, "prev",
            "waiting-children")
end
