--[[
  Makes a job ready: priority 0 goes to the ready list (LPUSH = back of the FIFO, RPUSH = front,
  which is where LIFO and put-back jobs go); a priority goes to `prioritized` with score
  priority * 2^32 + (INCR pc mod 2^32), so lower numbers win and one priority stays FIFO.

  KEYS: none (list, prioritized and pc keys are arguments)
  ARGV: none
  Returns: nothing
  Emits: none
  Compat: same scores and directions as BullMQ 5 and 6.
]]
local function pushReady(listKey, prioritizedKey, pcKey, jobId, priority, pushCmd)
  if priority > 0 then
    local counter = rcall("INCR", pcKey) % 4294967296
    rcall("ZADD", prioritizedKey, priority * 4294967296 + counter, jobId)
  else
    rcall(pushCmd, listKey, jobId)
  end
end
