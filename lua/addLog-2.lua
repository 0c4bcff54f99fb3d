--[[
  Appends a line to a job's log, keeping only the newest `keepLogs` lines when that is set.

  KEYS:
    [1] job - P:Q:<id>
    [2] logs - P:Q:<id>:logs
  ARGV:
    [1] jobId
    [2] line
    [3] keepLogs - "" for no limit
  Returns: the number of lines kept, -1 no job hash
  Emits: none
  Compat: BullMQ 5 and 6 alike.
]]
local rcall = redis.call
local jobKey = KEYS[1]
local logsKey = KEYS[2]
local keep = tonumber(ARGV[3])

if rcall("EXISTS", jobKey) == 0 then
  return -1
end
local count = rcall("RPUSH", logsKey, ARGV[2])
if keep and keep > 0 then
  rcall("LTRIM", logsKey, -keep, -1)
  return math.min(keep, count)
end
return count
