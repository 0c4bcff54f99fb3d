--[[
  Reads the queue's meta hash once and answers the questions every claiming or pushing script
  asks: is the queue paused, is it at its global concurrency, what rate limit applies, how long
  may the event stream grow, and which BullMQ major's pause rule applies. One HMGET instead of
  several keeps Redis CPU per job low.

  `compat` is the worker's BULLMQ_COMPAT: "5" or "6" force that major's pause rule; "auto"
  (or anything else) reads `meta.version`, which every Node Queue writes as
  `bullmq:<version>`: 6 or later means the v6 rule, anything else (5.x, or no Node Queue has
  written it yet) the v5 rule, which is also what a v6 resume handles safely.

  KEYS: none (the meta and active keys are passed as arguments)
  ARGV: none
  Returns: a table {paused, maxed, concurrency, maxEvents, max, duration, v6Pause}
           (concurrency: the global concurrency, nil for none)
  Emits: none
  Compat: `opts.maxLenEvents` is created with 10000 when missing, as BullMQ 5 and 6 do.
]]
local function readQueueState(metaKey, activeKey, compat)
  local meta = rcall("HMGET", metaKey, "paused", "concurrency", "max", "duration",
                     "opts.maxLenEvents", "version")
  local state = {}
  state.paused = meta[1] ~= false
  state.maxed = false
  if meta[2] then
    state.concurrency = tonumber(meta[2])
    state.maxed = rcall("LLEN", activeKey) >= state.concurrency
  end
  state.max = meta[3] and tonumber(meta[3]) or nil
  state.duration = meta[4] and tonumber(meta[4]) or nil
  if meta[5] then
    -- Kept as the text Redis gave when it is a plain integer (as Node writes it): every event
    -- passes it to XADD, and a Lua number would be formatted back into text each time.
    state.maxEvents = string.match(meta[5], "^%d+$") or tonumber(meta[5])
  else
    state.maxEvents = "10000"
    rcall("HSET", metaKey, "opts.maxLenEvents", "10000")
  end
  if compat == "6" then
    state.v6Pause = true
  elseif compat == "5" then
    state.v6Pause = false
  else
    local major = nil
    if meta[6] then
      major = tonumber(string.match(meta[6], "^bullmq:(%d+)%."))
    end
    state.v6Pause = major ~= nil and major >= 6
  end
  return state
end
