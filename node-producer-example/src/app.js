'use strict';
// The app's Express side of the `fetch` queue, testable without listening:
//
//   POST /missing       {branches_missing} → one `fetch-job` {branch, pos, date} per POS day,
//                       job id `day.<branch>.<pos>.<date>`; days already queued, delayed or
//                       running are skipped and listed with the reason
//   GET  /missing       ?start&end → the POS days not imported (no `done` import record), as branches_missing
//   POST /reprocess     the same body as POST /missing → one `fetch-job` {branch, pos, date,
//                       reprocess: true} per POS day: the worker combines and imports the day
//                       again from the raw files it stored, without calling the POS server;
//                       job id `reprocess.<branch>.<pos>.<date>.<ms>`
//   GET  /jobs/:id      a job's state, progress, attempts, result or failure, timestamps
//   GET  /health        Redis PING and MongoDB ping (no token: for orchestrators)
//   GET  /coverage      the coverage calendar (src/coverage.js), with POST /coverage/enqueue
//                       behind its buttons; behind the board's basic auth
//   /admin/queues       Bull Board behind basic auth (only when credentials are given)
//
// Every route but /health, the board and the coverage page needs `Authorization: Bearer <API_TOKEN>`; POST
// /missing and POST /reprocess are also rate limited per client (one shared budget).

const express = require('express');
const { DEFAULT_JOB_OPTIONS, RETENTION } = require('./queue');
const { bearerAuth, RateLimiter, rateLimit } = require('./guard');
const { BOARD_PATH, basicAuth, mountBoard } = require('./board');
const { mountCoverage } = require('./coverage');
const {
  BadRequest, dayJobId, jobsFromBody, parseRange, presentDays, missingShape,
} = require('./missing');
const { log: defaultLog } = require('./log');
const { serverSpans } = require('./telemetry');

const JOB_NAME = 'fetch-job';
/** Ids BullMQ makes (integers) and the usual custom ones; never a `:` (it would name another key). */
const JOB_ID_RE = /^[A-Za-z0-9_.-]{1,200}$/;
const BODY_LIMIT = '2mb';
/** POST /missing requests allowed per client per minute by default. */
const DEFAULT_POST_RATE = 30;

/** States in which a day's job is still to run or running: it is not enqueued again. */
const PENDING_STATES = Object.freeze({
  waiting: 'already queued',
  prioritized: 'already queued',
  'waiting-children': 'already queued',
  delayed: 'delayed (waiting for a retry)',
  active: 'running',
});

/**
 * The job id of one reprocess of a POS day, requested at `ms`. Not the day's fetch id: a
 * fetch job of the day is kept after it finishes (retention) and would make `add` a no-op, and
 * a reprocess must neither replace nor be mistaken for the day's fetch. Each request is its
 * own job; the worker's fenced import runs them one at a time per day, so a repeated request
 * only imports the same rows again.
 */
function reprocessJobId({ branch, pos, date }, ms) {
  return `reprocess.${branch}.${pos}.${date}.${ms}`;
}

/**
 * Enqueues one `fetch-job` per POS day of `days` (`{branch, pos, date}`, validated by
 * jobsFromBody) under the day's job id (dayJobId), so a day is never queued twice: a day whose
 * job is pending or running is skipped with the reason; a finished one (kept for its retention
 * period) is removed so the day can be fetched again. POST /missing and the coverage page's
 * enqueue buttons both go through here.
 *
 * @returns {Promise<{jobIds: string[], skipped: object[]}>}
 */
async function enqueueDays(queue, days) {
  const states = await Promise.all(days.map((data) => queue.getJobState(dayJobId(data))));
  const skipped = [];
  const fresh = [];
  for (const [i, data] of days.entries()) {
    const jobId = dayJobId(data);
    const reason = PENDING_STATES[states[i]];
    if (reason) {
      skipped.push({ ...data, jobId, reason });
      continue;
    }
    if (states[i] === 'completed' || states[i] === 'failed') {
      const old = await queue.getJob(jobId);
      // A job that moved on since (locked by a worker) is left alone and reported.
      if (old && !(await old.remove().then(() => true, () => false))) {
        skipped.push({ ...data, jobId, reason: 'running' });
        continue;
      }
    }
    fresh.push({ data, jobId });
  }
  const added = fresh.length === 0 ? [] : await queue.addBulk(fresh.map(({ data, jobId }) => ({
    name: JOB_NAME,
    data,
    opts: {
      jobId,
      attempts: DEFAULT_JOB_OPTIONS.attempts,
      backoff: { ...DEFAULT_JOB_OPTIONS.backoff },
      removeOnComplete: { ...RETENTION.removeOnComplete },
      removeOnFail: { ...RETENTION.removeOnFail },
    },
  })));
  return { jobIds: added.map((job) => job.id), skipped };
}

/** A 503 answer: a store the request needs does not answer. */
class Unavailable extends Error {
  constructor(message) {
    super(message);
    this.name = 'Unavailable';
    this.status = 503;
  }
}

/** Resolves `promise`, or rejects after `ms` with `what did not answer within ms`. */
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}

/**
 * The queue's Redis client once it is connected; Unavailable when it is not (a command sent now
 * would wait in ioredis's offline queue for a reconnect instead of failing).
 */
async function readyRedis(queue, timeoutMs) {
  // BullMQ 5: `queue.client`; BullMQ 6 moved it behind `queue.getBackend()`.
  const pending = typeof queue.getBackend === 'function' ? queue.getBackend().client : queue.client;
  let client;
  try {
    client = await withTimeout(pending, timeoutMs, 'Redis');
  } catch (err) {
    throw new Unavailable(`Redis unavailable: ${err.message}`);
  }
  if (client.status !== 'ready') throw new Unavailable(`Redis unavailable: connection is ${client.status}`);
  return client;
}

/** `ok`, or `error: <why>`. */
async function probe(check, timeoutMs, what) {
  try {
    await withTimeout(check(), timeoutMs, what);
    return 'ok';
  } catch (err) {
    return `error: ${err.message}`;
  }
}

/** A job as GET /jobs/:id shows it. */
async function describeJob(job) {
  const state = await job.getState();
  const view = {
    id: job.id,
    name: job.name,
    data: job.data,
    state,
    progress: job.progress,
    attemptsMade: job.attemptsMade,
    attempts: job.opts.attempts ?? 1,
    timestamp: job.timestamp ?? null,
    processedOn: job.processedOn ?? null,
    finishedOn: job.finishedOn ?? null,
  };
  if (job.delay) view.delay = job.delay;
  if (job.processedBy) view.processedBy = job.processedBy;
  if (state === 'completed') view.returnvalue = job.returnvalue ?? null;
  // A retried job keeps the reason of its last failed attempt; show it in every state.
  if (job.failedReason) view.failedReason = job.failedReason;
  return view;
}

/**
 * Builds the Express app.
 *
 * @param {object} options
 * @param {object} options.queue      a BullMQ Queue (src/queue.js createQueue)
 * @param {object} options.mongoDb    a mongodb Db (collection `imports`, the worker's record per day)
 * @param {string[]} options.branches the branches GET /missing expects (src/branches.js)
 * @param {{user: string, password: string}|null} [options.boardAuth] Bull Board's credentials;
 *        without them the board is not mounted
 * @param {Function} [options.log]    (level, message, fields) logger
 * @param {number} [options.healthTimeoutMs] per-store timeout of /health and of Redis readiness
 * @param {number} [options.maxJobs]  the most jobs one POST /missing may enqueue
 * @param {number} [options.maxRangeDays] the widest GET /missing range
 * @param {string|null} [options.apiToken] the bearer token of the API routes; `null` turns the
 *        check off (local demos); absent, the API refuses every request
 * @param {{max: number, windowMs: number}} [options.postRate] POST /missing per client
 * @param {{maxFailures: number, windowMs: number}} [options.boardThrottle] failed board logins
 * @param {object|null} [options.tracer] an OpenTelemetry tracer (src/telemetry.js): each request
 *        gets a server span, under which the queue's spans hang; none when tracing is off
 */
function createApp({
  queue, mongoDb, branches, boardAuth = null, log = defaultLog, healthTimeoutMs = 2000, maxJobs, maxRangeDays,
  apiToken, postRate = { max: DEFAULT_POST_RATE, windowMs: 60000 }, boardThrottle, tracer = null,
}) {
  if (!queue) throw new Error('createApp: queue is required');
  if (!mongoDb) throw new Error('createApp: mongoDb is required');
  if (!Array.isArray(branches) || branches.length === 0) throw new Error('createApp: branches must be a non-empty array');
  const branchList = branches.slice();

  const app = express();
  app.disable('x-powered-by');
  if (tracer) app.use(serverSpans(tracer));
  const api = bearerAuth(apiToken);
  const posts = rateLimit(new RateLimiter(postRate));

  app.post('/missing', api, posts, express.json({ limit: BODY_LIMIT }), async (req, res) => {
    if (!req.is('application/json')) {
      throw new BadRequest('send the body as application/json: {"branches_missing": {BRANCH: {"1": [dates], "2": [dates]}}}');
    }
    const jobs = jobsFromBody(req.body, maxJobs === undefined ? {} : { maxJobs });
    if (jobs.length === 0) {
      res.status(202).json({ jobIds: [], count: 0, skipped: [] });
      return;
    }
    await readyRedis(queue, healthTimeoutMs);
    const { jobIds, skipped } = await enqueueDays(queue, jobs);
    log('info', 'enqueued missing POS days', { count: jobIds.length, skipped: skipped.length, first: jobIds[0], last: jobIds[jobIds.length - 1] });
    res.status(202).json({ jobIds, count: jobIds.length, skipped });
  });

  app.post('/reprocess', api, posts, express.json({ limit: BODY_LIMIT }), async (req, res) => {
    if (!req.is('application/json')) {
      throw new BadRequest('send the body as application/json: {"branches_missing": {BRANCH: {"1": [dates], "2": [dates]}}}');
    }
    const days = jobsFromBody(req.body, maxJobs === undefined ? {} : { maxJobs });
    if (days.length === 0) {
      res.status(202).json({ jobIds: [], count: 0 });
      return;
    }
    await readyRedis(queue, healthTimeoutMs);
    const requestedAt = Date.now();
    const added = await queue.addBulk(days.map((day) => ({
      name: JOB_NAME,
      data: { ...day, reprocess: true },
      opts: {
        jobId: reprocessJobId(day, requestedAt),
        attempts: DEFAULT_JOB_OPTIONS.attempts,
        backoff: { ...DEFAULT_JOB_OPTIONS.backoff },
        removeOnComplete: { ...RETENTION.removeOnComplete },
        removeOnFail: { ...RETENTION.removeOnFail },
      },
    })));
    const jobIds = added.map((job) => job.id);
    log('info', 'enqueued POS days to reprocess', { count: jobIds.length, first: jobIds[0], last: jobIds[jobIds.length - 1] });
    res.status(202).json({ jobIds, count: jobIds.length });
  });

  app.get('/missing', api, async (req, res) => {
    const { start, end } = req.query;
    if (Array.isArray(start) || Array.isArray(end)) throw new BadRequest('give start and end once each');
    const range = parseRange(start, end, maxRangeDays === undefined ? {} : { maxDays: maxRangeDays });
    let present;
    try {
      present = await presentDays(mongoDb.collection('imports'), { branches: branchList, days: range.days });
    } catch (err) {
      throw mongoError(err);
    }
    res.json({ branches_missing: missingShape(branchList, range.days, present) });
  });

  app.get('/jobs/:id', api, async (req, res) => {
    const { id } = req.params;
    if (!JOB_ID_RE.test(id)) throw new BadRequest(`job id ${JSON.stringify(id)} is not 1-200 letters, digits, "_", "." or "-"`);
    await readyRedis(queue, healthTimeoutMs);
    let job;
    try {
      job = await queue.getJob(id);
    } catch (err) {
      // An id naming one of the queue's own keys (`wait`, `events`, `id`…) is no job.
      if (!/WRONGTYPE/.test(err.message)) throw err;
    }
    // `meta` is a hash too, but has no job fields.
    if (!job || !job.name || !job.timestamp) {
      res.status(404).json({ error: `no job with id ${id} on queue ${queue.name}` });
      return;
    }
    res.json(await describeJob(job));
  });

  app.get('/health', async (req, res) => {
    const [redis, mongo] = await Promise.all([
      probe(async () => {
        const client = await readyRedis(queue, healthTimeoutMs);
        const reply = await client.ping();
        if (reply !== 'PONG') throw new Error(`PING answered ${JSON.stringify(reply)}`);
      }, healthTimeoutMs, 'Redis'),
      probe(() => mongoDb.command({ ping: 1 }), healthTimeoutMs, 'MongoDB'),
    ]);
    const ok = redis === 'ok' && mongo === 'ok';
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', redis, mongo });
  });

  // The operator's pages (the coverage calendar and Bull Board) share one basic-auth guard.
  const pages = boardAuth ? basicAuth(boardAuth, boardThrottle) : null;
  if (pages) {
    mountCoverage(app, {
      queue, mongoDb, branches: branchList, guard: pages, posts, log, maxJobs, maxRangeDays, mongoError,
      ready: () => readyRedis(queue, healthTimeoutMs),
      enqueue: (days) => enqueueDays(queue, days),
    });
  } else {
    app.use('/coverage', (req, res) => {
      res.status(404).json({ error: 'the coverage page is disabled: set BOARD_USER and BOARD_PASSWORD to enable it' });
    });
  }
  if (pages) {
    mountBoard(app, { queue, guard: pages });
  } else {
    app.use(BOARD_PATH, (req, res) => {
      res.status(404).json({ error: 'Bull Board is disabled: set BOARD_USER and BOARD_PASSWORD to enable it' });
    });
  }

  app.use((req, res) => {
    res.status(404).json({ error: `no route ${req.method} ${req.path}` });
  });

  // eslint-disable-next-line no-unused-vars
  app.use((err, req, res, next) => {
    const { status, message } = errorAnswer(err);
    if (status >= 500) log('error', 'request failed', { method: req.method, path: req.path, status, error: err.message });
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(status).json({ error: message });
  });

  return app;
}

/** MongoDB errors that mean "not reachable" become Unavailable; others stay as they are. */
function mongoError(err) {
  const name = err && err.name ? err.name : '';
  if (/MongoServerSelectionError|MongoNetworkError|MongoNetworkTimeoutError|MongoTopologyClosedError|MongoNotConnectedError/.test(name)) {
    return new Unavailable(`MongoDB unavailable: ${err.message}`);
  }
  return err;
}

/** The status and message an error is answered with. */
function errorAnswer(err) {
  // body-parser's errors carry a `type`.
  if (err.type === 'entity.parse.failed') return { status: 400, message: `the body is not valid JSON: ${err.message}` };
  if (err.type === 'entity.too.large') return { status: 413, message: `the body is larger than ${BODY_LIMIT}` };
  if (err.type === 'encoding.unsupported' || err.type === 'charset.unsupported') return { status: 415, message: err.message };
  const status = Number.isInteger(err.status) && err.status >= 400 && err.status < 600 ? err.status : 500;
  if (status < 500 || err instanceof Unavailable) return { status, message: err.message };
  return { status, message: `internal error: ${err.message}` };
}

module.exports = { createApp, withTimeout, dayJobId, reprocessJobId, enqueueDays, JOB_NAME, Unavailable };
