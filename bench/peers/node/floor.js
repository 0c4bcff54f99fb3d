'use strict';
// The floor: the least Redis work that drains a BullMQ queue so that Node's Queue,
// QueueEvents and Bull Board see each job go through the same states, fields and events as
// with a real worker. bench/queue.sh runs it as the peers `floor`, `floor2`, `floor16` and
// `floor64`, and reports the other peers' Redis µs/job as a ratio to it.
//
// It is not a worker: it has no retries, no lock renewal, no stalled check, no rate limiter
// or global concurrency, no flows, no deduplication, no metrics. Each of those costs a real
// worker nothing per job in this bench (a queue of plain jobs, drained in a few seconds,
// below the 7.5 s lock-renewal period and the 30 s stalled period), and the scripts refuse the
// queue states they do not model rather than get them wrong (see `unmodelled` below).
//
// WHAT A JOB NEEDS (issue 12 item 1; lua/moveToActive-10.lua and lua/moveToFinished-13.lua
// are the product's full versions). Every Redis call kept, and every one dropped, with why:
//
// Once per script call (one call = one job for `floor`, one batch for `floor16`/`floor64`):
//   KEPT  HMGET meta paused concurrency max opts.maxLenEvents: a claim must honour a pause
//         (BullMQ 6 pauses by `meta.paused` alone, `wait` stays full) and the global
//         concurrency and rate limit set from Node; the stream cap comes from the same read.
//         A finish with fetch-next shares the read with its claim. (Written once when
//         missing, as BullMQ does: not a per-job cost.)
//   KEPT  ZRANGEBYSCORE delayed .. LIMIT 0 1 (promotion check): BullMQ has no scheduler;
//         due delayed jobs (retries with backoff) become waiting only when a claim promotes
//         them. A due job makes the floor stop with an error (promotion is not modelled; the
//         bench has none), so what is measured is the check an empty `delayed` costs.
//   KEPT  ZADD marker 0 "0" after a claim that took a job: BullMQ's wake-up cascade. The
//         producer's marker wakes one idle worker; each claim re-arms it so that the next
//         idle worker (a Node worker in a mixed fleet) wakes and claims too, instead of
//         sleeping its drainDelay (5 s) while jobs wait. Once per call is enough to keep the
//         cascade going.
//   DROPPED DEL pc when `prioritized` is empty and ZRANGE delayed for the next due time:
//         they run only when a claim finds nothing, i.e. at the end of a drain, not per job.
//         (The drained event, also an end-of-drain cost, is kept: see finish below.)
//
// Claim, per job:
//   KEPT  RPOPLPUSH wait active (batch: one RPOP wait n + one LPUSH active ids, the same
//         resulting order): the job's state is `active` for Queue.getJobState and Bull Board.
//         When `wait` is empty, ZPOPMIN prioritized (+ LPUSH active) as BullMQ does.
//   KEPT  SET <job>:lock token PX lockDuration: without a lock, any worker's stalled check
//         (Node's included) moves the job back to wait as stalled.
//   KEPT  XADD events MAXLEN ~ <opts.maxLenEvents> * event active jobId <id> prev waiting:
//         QueueEvents' `active`. Trimmed in the same command, as the product does.
//   KEPT  HMGET <job> (the fields a worker needs to run and later finish the job: name, data,
//         opts, timestamp, atm, attemptsMade, ats, stc, defa, stacktrace, rjk: the same list
//         the product reads) plus deid, parentKey, parent: read here, at claim time, so the
//         finish needs no read of its own (the job is locked; nobody changes them meanwhile).
//   KEPT  HSET <job> processedOn <now> ats <ats+1>: Bull Board's "started" time and the job's
//         attemptsStarted. One HSET, the ats from the HMGET (no HINCRBY).
//   DROPPED `pb` (no worker name in the bench, as ours runs), LREM of a BullMQ-4 "0:" marker
//         popped from wait (a string compare, no call, when none).
//
// Finish (completed, removeOnComplete: true as the app's jobs have it), per job:
//   KEPT  GET <job>:lock + DEL <job>:lock when it holds our token: a worker that lost its lock
//         (stalled, its job given to another worker) must not complete the job.
//   KEPT  EXISTS <job>:dependencies <job>:unsuccessful: a job with pending children must not
//         complete, and children can be added to a job while it runs; a hit makes the floor
//         stop with an error (flows are not modelled).
//   KEPT  LREM active -1 <id>: leave `active`.
//   KEPT  DEL <job> :logs :dependencies :processed :failed :unsuccessful: removeOnComplete:
//         true deletes the job and its satellite keys (anyone may have added logs).
//   KEPT  XADD events MAXLEN ~ .. event completed jobId <id> returnvalue <json> prev active:
//         QueueEvents' `completed` with the return value.
//   DROPPED SREM stalled <id>: the stalled check only acts on ids still in `active` without a
//         lock, and the next check DELs the set; a finished job left in it is harmless.
//   DROPPED HMGET <job> name deid parentKey parent (and EXISTS <job>): answered by the claim's
//         read (above); the job exists while we hold its lock (Node's Queue.remove refuses a
//         locked job).
//   DROPPED ZADD completed / HSET returnvalue finishedOn atm: with removeOnComplete: true the
//         job is deleted at once (the product skips them too).
//   KEPT (not per job) the drained event (LLEN wait, LLEN active, ZCARD prioritized, XADD
//         drained) when a finish claims nothing, as BullMQ: QueueEvents' `drained`.
//
// MODES (environment, besides REDIS_URL, QUEUE_NAME, BULL_PREFIX, N from common.js)
//   CONCURRENCY   C jobs in flight at most.
//   FLOOR_BATCH   B (default 1): jobs per script call. C/B slots (the last one smaller when B
//                 does not divide C) each claim B jobs, "process" them (the product's noop
//                 return value, {"processed":true,"echo":<data>}), then finish all B and
//                 claim the next B in one EVALSHA (fetch-next, as BullMQ and the product do
//                 for one job).
//   FLOOR_SPLIT   1: no fetch-next; one claim script and one finish script per batch (per
//                 job with B=1: two EVALSHAs per job, the shape the issue names; the
//                 difference to `floor` is what fetch-next saves).
// All slots share one connection, as the product's worker and Node's do. One JSON line on
// stdout as drain.js prints it; exit 1 on any refusal, lost lock or missing job.

const crypto = require('crypto');
const Redis = require('ioredis');
const { settings, number, fail } = require('./common');

// KEYS for both scripts.
const KEY_NAMES = ['wait', 'active', 'prioritized', 'events', 'meta', 'marker', 'delayed'];

// The fields a claim returns after the job id, in order.
const JOB_FIELDS = [
  'name', 'data', 'opts', 'timestamp', 'atm', 'attemptsMade', 'ats', 'stc', 'defa',
  'stacktrace', 'rjk', 'deid', 'parentKey', 'parent',
];
const ATS = JOB_FIELDS.indexOf('ats') + 1; // Lua index

// Shared Lua: the queue-state read, the claim of up to n jobs, the finish of one job.
const LUA_COMMON = `
local rcall = redis.call
local k = {wait = KEYS[1], active = KEYS[2], prioritized = KEYS[3], events = KEYS[4],
           meta = KEYS[5], marker = KEYS[6], delayed = KEYS[7]}
local JOB_FIELDS = {${JOB_FIELDS.map((f) => `"${f}"`).join(', ')}}

-- Pause flag and stream cap; the floor refuses what it does not model.
local function queueState()
  local m = rcall("HMGET", k.meta, "paused", "concurrency", "max", "opts.maxLenEvents")
  if m[2] or m[3] then
    error("unmodelled: global concurrency or rate limit set on the queue")
  end
  local maxEvents = tonumber(m[4])
  if not maxEvents then
    maxEvents = 10000
    rcall("HSET", k.meta, "opts.maxLenEvents", maxEvents)
  end
  return m[1] ~= false, maxEvents
end

-- Claims up to n jobs; appends {id, fields...} tables to out; returns how many.
local function claim(baseKey, now, token, lockMs, n, paused, maxEvents, out)
  local due = rcall("ZRANGEBYSCORE", k.delayed, 0, (now + 1) * 4096 - 1, "LIMIT", 0, 1)
  if due[1] then
    error("unmodelled: a delayed job is due (promotion)")
  end
  if paused or n < 1 then
    return 0
  end
  local ids
  if n == 1 then
    local id = rcall("RPOPLPUSH", k.wait, k.active)
    ids = id and {id} or {}
  else
    ids = rcall("RPOP", k.wait, n) or {}
    if #ids > 0 then
      rcall("LPUSH", k.active, unpack(ids))
    end
  end
  if #ids < n then
    local popped = rcall("ZPOPMIN", k.prioritized, n - #ids)
    for i = 1, #popped, 2 do
      rcall("LPUSH", k.active, popped[i])
      ids[#ids + 1] = popped[i]
    end
  end
  for _, id in ipairs(ids) do
    local jobKey = baseKey .. id
    rcall("SET", jobKey .. ":lock", token, "PX", lockMs)
    rcall("XADD", k.events, "MAXLEN", "~", maxEvents, "*", "event", "active", "jobId", id,
          "prev", "waiting")
    local fields = rcall("HMGET", jobKey, unpack(JOB_FIELDS))
    local started = (tonumber(fields[${ATS}]) or 0) + 1
    fields[${ATS}] = tostring(started)
    rcall("HSET", jobKey, "processedOn", now, "ats", started)
    local entry = {id}
    for i = 1, #JOB_FIELDS do
      entry[i + 1] = fields[i]
    end
    out[#out + 1] = entry
  end
  if #ids > 0 then
    rcall("ZADD", k.marker, 0, "0")
  end
  return #ids
end

-- Completes one job (removeOnComplete: true). Returns 0, or -2 (no lock), -6 (another
-- token's lock), -3 (not in active).
local function finish(baseKey, token, id, returnvalue, maxEvents)
  local jobKey = baseKey .. id
  local lockKey = jobKey .. ":lock"
  local owner = rcall("GET", lockKey)
  if owner ~= token then
    return owner and -6 or -2
  end
  if rcall("EXISTS", jobKey .. ":dependencies", jobKey .. ":unsuccessful") > 0 then
    error("unmodelled: job " .. id .. " has children")
  end
  rcall("DEL", lockKey)
  if rcall("LREM", k.active, -1, id) == 0 then
    return -3
  end
  rcall("DEL", jobKey, jobKey .. ":logs", jobKey .. ":dependencies", jobKey .. ":processed",
        jobKey .. ":failed", jobKey .. ":unsuccessful")
  rcall("XADD", k.events, "MAXLEN", "~", maxEvents, "*", "event", "completed", "jobId", id,
        "returnvalue", returnvalue, "prev", "active")
  return 0
end

local function emitDrainedIfEmpty(maxEvents)
  if rcall("LLEN", k.wait) == 0 and rcall("LLEN", k.active) == 0 and
     rcall("ZCARD", k.prioritized) == 0 then
    rcall("XADD", k.events, "MAXLEN", "~", maxEvents, "*", "event", "drained")
  end
end
`;

// The claim script.
const CLAIM_LUA = `--[[
  floor claim: claims up to n jobs (see bench/peers/node/floor.js for what it keeps and drops).
  KEYS: [1] wait [2] active [3] prioritized [4] events [5] meta [6] marker [7] delayed
  ARGV: [1] base key "P:Q:" [2] now ms [3] token [4] lockDuration ms [5] n
  Returns: {{jobId, fields...}, ...} (fields as JOB_FIELDS), empty when nothing was claimed
  Emits: active (per job)
]]
${LUA_COMMON}
local paused, maxEvents = queueState()
local out = {}
claim(ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), paused,
      maxEvents, out)
return out
`;

// The finish script, with fetch-next.
const FINISH_LUA = `--[[
  floor finish: completes m jobs (removeOnComplete: true) and claims up to n next ones.
  KEYS: as the claim script
  ARGV: [1] base key [2] now ms [3] token [4] lockDuration ms [5] n to claim (0: none)
        [6] m, then m pairs: jobId, returnvalue (JSON text)
  Returns: {codes, claimed}: codes[i] is 0 or negative (see finish) for the i-th job;
           claimed as the claim script returns it
  Emits: completed (per job), active (per claimed job), drained (nothing claimed, queue empty)
]]
${LUA_COMMON}
local baseKey, now, token = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local paused, maxEvents = queueState()
local m = tonumber(ARGV[6])
local codes = {}
for i = 1, m do
  codes[i] = finish(baseKey, token, ARGV[5 + 2 * i], ARGV[6 + 2 * i], maxEvents)
end
local out = {}
local claimed = claim(baseKey, now, token, tonumber(ARGV[4]), tonumber(ARGV[5]), paused,
                      maxEvents, out)
if claimed == 0 then
  emitDrainedIfEmpty(maxEvents)
end
return {codes, out}
`;

const LOCK_MS = 30000; // the product's default lockDuration

async function main() {
  const { connection, queueName, prefix, jobs } = settings();
  const concurrency = number('CONCURRENCY');
  const batch = Math.min(number('FLOOR_BATCH', 1), concurrency);
  const split = process.env.FLOOR_SPLIT === '1';
  const timeoutS = number('DRAIN_TIMEOUT_S', 600);
  if (!(batch >= 1) || !Number.isInteger(batch)) throw new Error(`FLOOR_BATCH must be >= 1`);

  const redis = new Redis(connection);
  const base = `${prefix}:${queueName}:`;
  const keys = KEY_NAMES.map((name) => base + name);
  const claimSha = await redis.script('LOAD', CLAIM_LUA);
  const finishSha = await redis.script('LOAD', FINISH_LUA);
  const worker = crypto.randomUUID();

  const claimJobs = (token, n) =>
    redis.evalsha(claimSha, keys.length, ...keys, base, Date.now(), token, LOCK_MS, n);
  const finishJobs = async (token, done, n) => {
    const args = [base, Date.now(), token, LOCK_MS, n, done.length];
    for (const [id, value] of done) args.push(id, value);
    const [codes, claimed] = await redis.evalsha(finishSha, keys.length, ...keys, ...args);
    codes.forEach((code, i) => {
      if (code !== 0) throw new Error(`finishing job ${done[i][0]} returned ${code}`);
    });
    return claimed;
  };
  // The product's noop processor: {"processed": true, "echo": <data>}. The stored data is
  // JSON text already (JSON.stringify's, from fill.js), so it is echoed as it is.
  const noop = (entry) => [entry[0], `{"processed":true,"echo":${entry[2] || '{}'}}`];

  let completed = 0;
  const slot = async (index, size) => {
    const token = `${worker}:${index}`;
    let claimed = await claimJobs(token, size);
    while (claimed.length > 0) {
      const done = claimed.map(noop);
      if (split) {
        await finishJobs(token, done, 0);
        completed += done.length;
        claimed = await claimJobs(token, size);
      } else {
        claimed = await finishJobs(token, done, size);
        completed += done.length;
      }
    }
  };

  const slots = [];
  for (let i = 0, left = concurrency; left > 0; i++, left -= batch) {
    slots.push(Math.min(batch, left));
  }
  const timer = setTimeout(() => {
    fail('floor.js', new Error(`timed out after ${timeoutS} s with ${completed} of ${jobs} jobs completed`));
  }, timeoutS * 1000);
  timer.unref();

  const startedAt = process.hrtime.bigint();
  await Promise.all(slots.map((size, i) => slot(i, size)));
  const elapsedMs = Number(process.hrtime.bigint() - startedAt) / 1e6;
  await redis.quit();
  if (completed !== jobs) {
    throw new Error(`completed ${completed} jobs, expected ${jobs}`);
  }
  process.stdout.write(
    `${JSON.stringify({
      peer: split ? 'floor2' : `floor${batch > 1 ? batch : ''}`,
      concurrency,
      batch,
      slots: slots.length,
      jobs: completed,
      elapsed_ms: Number(elapsedMs.toFixed(3)),
      jobs_per_s: Number(((completed * 1000) / elapsedMs).toFixed(1)),
    })}\n`,
  );
}

module.exports = { CLAIM_LUA, FINISH_LUA, KEY_NAMES, JOB_FIELDS, LOCK_MS };

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err) => fail('floor.js', err),
  );
}
