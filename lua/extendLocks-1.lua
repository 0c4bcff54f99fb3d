--[[
  Renews the locks of a worker's in-flight jobs in one call, and forgets each renewed job as a
  stalled candidate. A lock that is gone or owned by another token is not touched.

  KEYS:
    [1] stalled - P:Q:stalled
  ARGV:
    [1] base key - "P:Q:"
    [2] lockDuration - ms
    [3..] pairs of jobId, token
  Returns: the ids whose locks could not be renewed (empty when all were)
  Emits: none
  Compat: same effect as BullMQ's extendLocks (5.33+) and 6.
]]
local rcall = redis.call
local stalledKey = KEYS[1]
local baseKey = ARGV[1]
local lockDuration = tonumber(ARGV[2])

local lost = {}
for i = 3, #ARGV, 2 do
  local jobId = ARGV[i]
  local token = ARGV[i + 1]
  local lockKey = baseKey .. jobId .. ":lock"
  if rcall("GET", lockKey) == token then
    rcall("SET", lockKey, token, "PX", lockDuration)
    rcall("SREM", stalledKey, jobId)
  else
    lost[#lost + 1] = jobId
  end
end
return lost
