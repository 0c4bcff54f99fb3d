--[[
  Chooses the list a ready (non-prioritized) job is pushed to while the queue may be paused.

  BullMQ 5 moves `wait` to `paused` on pause and pushes every ready job to `paused` until a
  resume renames it back. BullMQ 6 never writes `paused`: jobs stay in `wait` and the pause
  only stops claims; its Queue counts and lists only `wait`. So the rule follows the queue's
  major (state.v6Pause, see includes/readQueueState): v6 pushes to `wait`, v5 to `paused`
  while `meta.paused` is set. Pushing to `wait` under a v5 fleet would lose the jobs to a v5
  resume (RENAME overwrites `wait`); pushing to `paused` under v6 hides them from its Queue
  until resume.

  KEYS: none (wait and paused keys are arguments)
  ARGV: none
  Returns: the key to push to
  Emits: none
  Compat: v5 and v6 rules, chosen by BULLMQ_COMPAT / meta.version (see README, "Paused queues").
]]
local function readyListFor(waitKey, pausedKey, state)
  if state.paused and not state.v6Pause then
    return pausedKey
  end
  return waitKey
end
