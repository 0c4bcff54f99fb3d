--[[
  One job's 15 ARGV, from `at`: the same layout in moveToFinished (one job, at 8) and in
  moveToFinishedBatch (one every 15 from 8), so a job's request means the same in both.

  KEYS: none (the caller names the job's key and its finished set)
  ARGV:
    [+0] jobId
    [+1] now - ms since epoch; becomes finishedOn and the set score
    [+2] field - "returnvalue" or "failedReason"
    [+3] value - the return value as JSON text, or the raw failure message
    [+4] target - "completed" or "failed"
    [+5] fetchNext - "1" to claim the slot's next job with the same token, "0" not to
    [+6] token - the lock token that claimed the job
    [+7] keep count - retention count (-1 keep all, 0 delete now, N keep newest N)
    [+8] keep age - seconds, "" for none
    [+9] keep limit - removals per call, "" for the default 1000
    [+10] attempts - the job's opts.attempts (0 when absent)
    [+11] stacktrace - JSON array of strings to store, "" to leave the field alone
    [+12] attemptsMade - attempts ended before this one (the worker read it at claim; it
          holds the lock, so nobody else changed it); stored as `atm` + 1
    [+13] deid - the deduplication id the claim read, "" for none (set when the job is
          added, never changed after)
    [+14] parent - "1" when the claim read `parentKey` or `parent` (a flow's child), ""
          when it read neither (a job cannot gain a parent later)
  Returns: the table includes/finishJob calls `j`
  Emits: none
  Compat: our own layout; Node never calls these scripts.
]]
local FINISH_ARGS_PER_JOB = 15

local function readFinishJob(at, jobKey, finishedKey)
  -- `nowText` is `now` as sent, for the fields and scores it goes back to Redis as.
  return {id = ARGV[at], key = jobKey, now = tonumber(ARGV[at + 1]), nowText = ARGV[at + 1],
          field = ARGV[at + 2],
          value = ARGV[at + 3], target = ARGV[at + 4], finishedKey = finishedKey,
          fetchNext = ARGV[at + 5] == "1", token = ARGV[at + 6],
          keepCount = tonumber(ARGV[at + 7]), keepAge = tonumber(ARGV[at + 8]),
          keepLimit = tonumber(ARGV[at + 9]), attempts = tonumber(ARGV[at + 10]) or 0,
          stacktrace = ARGV[at + 11], attemptsMade = (tonumber(ARGV[at + 12]) or 0) + 1,
          dedupId = ARGV[at + 13] ~= "" and ARGV[at + 13] or nil,
          hasParent = ARGV[at + 14] == "1"}
end
