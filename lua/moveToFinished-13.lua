--[[
  Ends an attempt for good: the job leaves `active` for `completed` or `failed` (or is deleted
  at once when its retention count is 0), its lock is released, `atm` counts the attempt, and
  the outcome is announced. With fetch-next the same call claims the worker's next job, so a
  busy worker spends one script call per job.

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
    [12] finished - P:Q:completed or P:Q:failed
    [13] job - P:Q:<id>
  ARGV: includes/readFinishShared (1-7), then includes/readFinishJob (8-22), as in
        moveToFinishedBatch
    [1] base key - "P:Q:"
    [2] lockDuration - ms, for the next job's lock
    [3] worker name - "" for none
    [4] limiter max - "" for none
    [5] limiter duration - ms, "" for none
    [6] compat - BULLMQ_COMPAT: "auto", "5" or "6" (paused-queue rule)
    [7] metrics max data points - "" when the worker collects no metrics
    [8] jobId
    [9] now - ms since epoch; becomes finishedOn and the set score
    [10] field - "returnvalue" or "failedReason"
    [11] value - the return value as JSON text, or the raw failure message
    [12] target - "completed" or "failed"
    [13] fetchNext - "1" to claim the next job with the same token, "0" not to
    [14] token - the lock token that claimed the job
    [15] keep count - retention count (-1 keep all, 0 delete now, N keep newest N)
    [16] keep age - seconds, "" for none
    [17] keep limit - removals per call, "" for the default 1000
    [18] attempts - the job's opts.attempts (0 when absent)
    [19] stacktrace - JSON array of strings to store, "" to leave the field alone
    [20] attemptsMade - attempts ended before this one (the worker read it at claim; it holds
         the lock, so nobody else changed it); stored as `atm` + 1
    [21] deid - the job's deduplication id as the claim read it, "" for none (set when the
         job is added, never changed after)
    [22] parent - "1" when the claim read a `parentKey` or `parent` field (a flow's child),
         "" when it read neither (a job cannot gain a parent later)
  Returns:
    0 finished, nothing claimed (or no job ready)
    {fields, jobId, 0, 0} | {0, 0, ttl, 0} | {0, 0, 0, due} as moveToActive, when fetchNext
    -1 the job hash is missing (looked up only when the lock is missing)
    -2 the lock is missing
    -3 the job is not in `active`
    -4 the job has pending children (complete refused)
    -6 the lock belongs to another token
    -9 the job has failed children (complete refused)
  Emits: added and waiting/delayed (a keepLastIfActive job stored while this one ran),
         completed (returnvalue) or failed (failedReason), retries-exhausted, active and
         waiting (when fetching next), drained; on a parent's queue (flows): waiting (prev
         waiting-children) or delayed when the parent is released
  The body is includes/finishJobs, which moveToFinishedBatch runs with several jobs.
  Compat: BullMQ 5 and 6 alike. Flows as upstream: a child updates its parent (which may be
          in another queue or prefix) before retention runs, see includes/updateParentOnFinish
          and includes/unlinkFromParent; the parent's queue follows its own major's pause rule.
]]
local rcall = redis.call
local keys = {wait = KEYS[1], active = KEYS[2], prioritized = KEYS[3], events = KEYS[4],
              stalled = KEYS[5], limiter = KEYS[6], delayed = KEYS[7], paused = KEYS[8],
              meta = KEYS[9], pc = KEYS[10], marker = KEYS[11]}

--!include finishJobs
--!include readFinishShared
--!include readFinishJob

return finishJobs(keys, {readFinishJob(FINISH_SHARED_ARGS + 1, KEYS[13], KEYS[12])},
                  readFinishShared(), nil)[1]
