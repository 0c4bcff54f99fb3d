--[[
  Claims the next job for a worker: due delayed jobs are promoted first, then the job at the
  right end of `wait` (or the best `prioritized` one) moves to `active`, locked with the
  worker's token for `lockDuration`. The worker owns the job while it keeps the lock fresh.

  KEYS:
    [1] wait - P:Q:wait
    [2] active - P:Q:active
    [3] prioritized - P:Q:prioritized
    [4] events - P:Q:events
    [5] limiter - P:Q:limiter
    [6] delayed - P:Q:delayed
    [7] paused - P:Q:paused
    [8] meta - P:Q:meta
    [9] pc - P:Q:pc
    [10] marker - P:Q:marker
  ARGV:
    [1] base key - "P:Q:"
    [2] now - ms since epoch
    [3] token - lock token ("<worker uuid>:<n>")
    [4] lockDuration - ms
    [5] worker name - "" for none
    [6] limiter max - jobs per window, "" for none
    [7] limiter duration - window in ms, "" for none
    [8] compat - BULLMQ_COMPAT: "auto", "5" or "6" (paused-queue rule)
  Returns:
    {fields, jobId, 0, 0} a job was claimed (fields as in includes/claimJobs)
    {0, 0, ttl, 0} rate limited for ttl ms
    {0, 0, 0, due} no job ready; the earliest delayed job is due at `due` ms
    {0, 0, 0, 0} paused, at global concurrency, or empty
  Emits: waiting (promoted delayed jobs), active
  Compat: BullMQ 5 and 6 (paused jobs: see includes/readyListFor).
]]
local rcall = redis.call
local keys = {wait = KEYS[1], active = KEYS[2], prioritized = KEYS[3], events = KEYS[4],
              limiter = KEYS[5], delayed = KEYS[6], paused = KEYS[7], meta = KEYS[8],
              pc = KEYS[9], marker = KEYS[10]}
local baseKey = ARGV[1]
local now = tonumber(ARGV[2])
local token = ARGV[3]
local lockDuration = tonumber(ARGV[4])
local workerName = ARGV[5] ~= "" and ARGV[5] or nil
local limitMax = tonumber(ARGV[6])
local limitDuration = tonumber(ARGV[7])
local compat = ARGV[8]

--!include claimNextJob

return claimNextJob(keys, baseKey, now, token, lockDuration, workerName, limitMax,
                    limitDuration, compat) or {0, 0, 0, 0}
