--[[
  Chooses the list a ready (non-prioritized) job is pushed to. We follow BullMQ 5's paused
  semantics: while `meta.paused` is set, ready jobs go to `paused`. A BullMQ 5 resume renames
  `paused` back to `wait`; a BullMQ 6 resume drains `paused` into `wait`. Both therefore see
  every job we pushed during a pause, whereas pushing to `wait` would lose jobs to a v5 resume.

  KEYS: none (wait and paused keys are arguments)
  ARGV: none
  Returns: the key to push to
  Emits: none
  Compat: v5 rule, safe for v6 resumes (see README, "Paused queues").
]]
local function readyListFor(waitKey, pausedKey, state)
  if state.paused then
    return pausedKey
  end
  return waitKey
end
