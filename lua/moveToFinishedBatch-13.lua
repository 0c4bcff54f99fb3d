--[[
  Ends several attempts for good in one call, each as moveToFinished would, in the order given
  (job 1 leaves `active`, then job 2, and so on), then claims the next job of every slot that
  asked for fetch-next, all in one pass. A busy worker whose jobs end close together sends
  them together, so the script call, its round trip, the queue-state read and the claim's
  fixed part (promotion check, limiter, pop, marker) are paid once per batch instead of once
  per job. Each job gets exactly the calls, fields and events a call of its own gives it, in
  the same order for that job (the body is includes/finishJobs, as in moveToFinished), and a
  job the script refuses (lock lost, children pending, ...) gets its code while the others go
  on: nothing here raises an error.

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
  ARGV: includes/readFinishShared, then includes/readFinishJob once per job, as in
        moveToFinished
    [1..7] base key, lockDuration, worker name, limiter max, limiter duration, compat,
           metrics max data points: the worker's, shared by every job
    then 15 per job, from ARGV[8]: jobId, now, field, value, target, fetchNext, token, keep
           count, keep age, keep limit, attempts, stacktrace, attemptsMade, deid, parent
           (each as moveToFinished's ARGV 8-22)
  Returns: an array with one entry per job, in order, each what moveToFinished returns for
           it: 0 (finished, nothing claimed), the claim table {fields, jobId, ttl, due}, or a
           negative code (-1 job missing, -2 lock missing, -3 not active, -4 pending
           children, -6 another token's lock, -9 failed children)
  Emits: per job, what moveToFinished emits for its end (completed or failed, ...), in job
         order; then waiting for promoted delayed jobs and active for each job claimed, in
         job order; then drained, once, when a job got no next job and the queue is empty
  Compat: BullMQ 5 and 6 alike; Node never calls it (its workers finish one job per call,
          and a mixed fleet's Node jobs are never in our batches).
]]
local rcall = redis.call
local keys = {wait = KEYS[1], active = KEYS[2], prioritized = KEYS[3], events = KEYS[4],
              stalled = KEYS[5], limiter = KEYS[6], delayed = KEYS[7], paused = KEYS[8],
              meta = KEYS[9], pc = KEYS[10], marker = KEYS[11]}
local finishedKeys = {completed = KEYS[12], failed = KEYS[13]}

--!include finishJobs
--!include readFinishShared
--!include readFinishJob

local shared = readFinishShared()
local jobs = {}
for at = FINISH_SHARED_ARGS + 1, #ARGV - FINISH_ARGS_PER_JOB + 1, FINISH_ARGS_PER_JOB do
  local target = ARGV[at + 4]
  jobs[#jobs + 1] = readFinishJob(at, shared.baseKey .. ARGV[at],
                                  finishedKeys[target] or KEYS[12])
end
-- One read of the queue state for the batch; finishJob re-checks the global concurrency
-- per job, the one part a finish changes.
return finishJobs(keys, jobs, shared, readQueueState(keys.meta, keys.active, shared.compat))
