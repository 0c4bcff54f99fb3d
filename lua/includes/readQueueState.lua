--[[
  Reads the queue's meta hash once and answers the questions every claiming or pushing script
  asks: is the queue paused, is it at its global concurrency, what rate limit applies, and how
  long may the event stream grow. One HMGET instead of several keeps Redis CPU per job low.

  KEYS: none (the meta and active keys are passed as arguments)
  ARGV: none
  Returns: a table {paused, maxed, maxEvents, max, duration}
  Emits: none
  Compat: `opts.maxLenEvents` is created with 10000 when missing, as BullMQ 5 and 6 do.
]]
local function readQueueState(metaKey, activeKey)
  local meta = rcall("HMGET", metaKey, "paused", "concurrency", "max", "duration", "opts.maxLenEvents")
  local state = {}
  state.paused = meta[1] ~= false
  state.maxed = false
  if meta[2] then
    state.maxed = rcall("LLEN", activeKey) >= tonumber(meta[2])
  end
  state.max = meta[3] and tonumber(meta[3]) or nil
  state.duration = meta[4] and tonumber(meta[4]) or nil
  if meta[5] then
    state.maxEvents = tonumber(meta[5])
  else
    state.maxEvents = 10000
    rcall("HSET", metaKey, "opts.maxLenEvents", 10000)
  end
  return state
end
