--[[
  The 7 ARGV every finish of one worker has in common, first in both moveToFinished and
  moveToFinishedBatch (a batch sends them once); the job's own follow (includes/readFinishJob).

  KEYS: none
  ARGV:
    [1] base key - "P:Q:"
    [2] lockDuration - ms, for the next jobs' locks
    [3] worker name - "" for none
    [4] limiter max - "" for none
    [5] limiter duration - ms, "" for none
    [6] compat - BULLMQ_COMPAT: "auto", "5" or "6" (paused-queue rule)
    [7] metrics max data points - "" when the worker collects no metrics
  Returns: the table includes/finishJob calls `c`
  Emits: none
  Compat: our own layout; Node never calls these scripts.
]]
local FINISH_SHARED_ARGS = 7

local function readFinishShared()
  -- lockDuration stays text: it only goes back to Redis (SET … PX), and a Lua number would
  -- be formatted into text again for each job.
  return {baseKey = ARGV[1], lockDuration = ARGV[2],
          workerName = ARGV[3] ~= "" and ARGV[3] or nil, limitMax = tonumber(ARGV[4]),
          limitDuration = tonumber(ARGV[5]), compat = ARGV[6],
          metricsPoints = tonumber(ARGV[7])}
end
