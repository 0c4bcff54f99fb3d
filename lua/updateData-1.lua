--[[
  Replaces a job's data (a processor's `job.updateData`), so the next attempt, Bull Board and
  Node's `Job.fromId` see the new payload.

  KEYS:
    [1] job - P:Q:<id>
  ARGV:
    [1] data - JSON text
  Returns: 0 stored, -1 no job hash
  Emits: none (BullMQ emits none either)
  Compat: BullMQ 5 and 6 alike.
]]
local rcall = redis.call
if rcall("EXISTS", KEYS[1]) == 0 then
  return -1
end
rcall("HSET", KEYS[1], "data", ARGV[1])
return 0
