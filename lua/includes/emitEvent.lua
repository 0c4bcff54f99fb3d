--[[
  Appends one entry to the queue's event stream, approximately trimmed to `maxEvents` in the
  same command (cheaper than a separate XTRIM per script).

  KEYS: none (the events key is an argument)
  ARGV: none
  Returns: the entry id
  Emits: whatever event name it is given
  Compat: BullMQ trims with XTRIM then XADD; the resulting stream is the same.
]]
local function emitEvent(eventsKey, maxEvents, ...)
  return rcall("XADD", eventsKey, "MAXLEN", "~", maxEvents, "*", "event", ...)
end
