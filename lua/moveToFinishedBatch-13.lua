--[[
  Ends several attempts for good in one call, each as moveToFinished would, in the order given:
  job 1 leaves `active` (and with fetch-next its slot claims the next job), then job 2, and so
  on. A busy worker whose jobs end close together sends them together, so the script call,
  its round trip and the queue-state read are paid once per batch instead of once per job.
  Each job gets exactly the calls, fields and events a call of its own gives it (the body is
  includes/finishJob), and a job the script refuses (lock lost, children pending, ...) gets
  its code while the others go on: nothing here raises an error.

  KEYS:
    [1] wait - P:Q:wait
    [2] active - P:Q:active
    [3] prioritized - P:Q:prioritized
    [4] events - P:Q:events
    [5] stalled - P:Q:stalled
    [6] limiter - P:Q:limiter
    [7] delayed - P:Q:delayed
    [8] paused - P:Q:paused
    [9] meta - P:Q:meta
    [10] pc - P:Q:pc
    [11] marker - P:Q:marker
    [12] completed - P:Q:completed
    [13] failed - P:Q:failed
  ARGV:
    [1] base key - "P:Q:" (job keys are built from it, as the claim does)
    [2] lockDuration - ms, for the next jobs' locks
    [3] worker name - "" for none
    [4] limiter max - "" for none
    [5] limiter duration - ms, "" for none
    [6] compat - BULLMQ_COMPAT: "auto", "5" or "6" (paused-queue rule)
    [7] metrics max data points - "" when the worker collects no metrics
    then 15 per job, from ARGV[8]:
    [+1] jobId
    [+2] now - ms since epoch; becomes finishedOn and the set score
    [+3] field - "returnvalue" or "failedReason"
    [+4] value - the return value as JSON text, or the raw failure message
    [+5] target - "completed" or "failed"
    [+6] fetchNext - "1" to claim the slot's next job with the same token, "0" not to
    [+7] token - the lock token that claimed the job
    [+8] keep count - retention count (-1 keep all, 0 delete now, N keep newest N)
    [+9] keep age - seconds, "" for none
    [+10] keep limit - removals per call, "" for the default 1000
    [+11] attempts - the job's opts.attempts (0 when absent)
    [+12] stacktrace - JSON array of strings to store, "" to leave the field alone
    [+13] attemptsMade - attempts ended before this one; stored as `atm` + 1
    [+14] deid - the deduplication id the claim read, "" for none
    [+15] parent - "1" when the claim read `parentKey` or `parent`, "" when not
  Returns: an array with one entry per job, in order, each what moveToFinished returns for
           it: 0 (finished, nothing claimed), the claim table {fields, jobId, ttl, due}, or a
           negative code (-1 job missing, -2 lock missing, -3 not active, -4 pending
           children, -6 another token's lock, -9 failed children)
  Emits: per job, what moveToFinished emits for it, in the same order
  Compat: BullMQ 5 and 6 alike; Node never calls it (its workers finish one job per call,
          and a mixed fleet's Node jobs are never in our batches).
]]
local rcall = redis.call
local keys = {wait = KEYS[1], active = KEYS[2], prioritized = KEYS[3], events = KEYS[4],
              stalled = KEYS[5], limiter = KEYS[6], delayed = KEYS[7], paused = KEYS[8],
              meta = KEYS[9], pc = KEYS[10], marker = KEYS[11]}
local finishedKeys = {completed = KEYS[12], failed = KEYS[13]}
local baseKey = ARGV[1]
local shared = {baseKey = baseKey, lockDuration = tonumber(ARGV[2]),
                workerName = ARGV[3] ~= "" and ARGV[3] or nil,
                limitMax = tonumber(ARGV[4]), limitDuration = tonumber(ARGV[5]),
                compat = ARGV[6], metricsPoints = tonumber(ARGV[7])}

--!include finishJob

-- One read of the queue state for the batch; finishJob re-checks the global concurrency
-- per job, the one part a finish or a claim changes.
local state = readQueueState(keys.meta, keys.active, shared.compat)
local results = {}
local PER_JOB = 15
for at = 8, #ARGV - PER_JOB + 1, PER_JOB do
  local id = ARGV[at]
  local target = ARGV[at + 4]
  local job = {id = id, key = baseKey .. id, now = tonumber(ARGV[at + 1]),
               field = ARGV[at + 2], value = ARGV[at + 3], target = target,
               finishedKey = finishedKeys[target] or KEYS[12],
               fetchNext = ARGV[at + 5] == "1", token = ARGV[at + 6],
               keepCount = tonumber(ARGV[at + 7]), keepAge = tonumber(ARGV[at + 8]),
               keepLimit = tonumber(ARGV[at + 9]), attempts = tonumber(ARGV[at + 10]) or 0,
               stacktrace = ARGV[at + 11], attemptsMade = (tonumber(ARGV[at + 12]) or 0) + 1,
               dedupId = ARGV[at + 13] ~= "" and ARGV[at + 13] or nil,
               hasParent = ARGV[at + 14] == "1"}
  local result
  result, state = finishJob(keys, job, shared, state)
  results[#results + 1] = result
end
return results
