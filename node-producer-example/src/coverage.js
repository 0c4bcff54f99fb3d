'use strict';
// The coverage calendar's data and routes: one row per branch and POS, one cell per day, each
// cell in one state (done, missing, failed, running, queued, future) plus whether the day has
// monitor entries, and the detail shown on hover. Read with one query per MongoDB collection
// (`imports`, `filerecords`, `monitorentries`) and one id listing per queue state, whatever
// the range: never a query per cell. Jobs are read one by one only for the cells that have one
// and are not done.
//
// "Missing" is GET /missing's: missingShape over the days whose `imports` record is not done
// (src/missing.js); the enqueue buttons post those days through enqueueDays, POST /missing's
// own path (job id `day.<branch>.<pos>.<date>`, pending days skipped).
//
//   GET  /coverage[?start=YYYY-MM-DD&end=YYYY-MM-DD][&refresh=S]   the page (default: the last 14
//                                                      days; reloads every S s (5) while jobs are pending)
//   POST /coverage/enqueue {start, end[, branch, pos]} enqueue the missing days of a row, or
//                                                      of every row, in the range

const crypto = require('node:crypto');
const { promisify } = require('node:util');
const zlib = require('node:zlib');
const express = require('express');
const {
  BadRequest, POS_NUMBERS, dayJobId, dayKey, formatDay, importRecords, lastDay, missingShape, parseDay, parseRange,
  presentDays, presentFrom, isImported, jobsFromBody,
} = require('./missing');
const { major } = require('./bullmq');
const { renderPage, renderError } = require('./coverage-page');

/** The range shown without query parameters: this many days, ending today (UTC). */
const DEFAULT_DAYS = 14;
/** Seconds between the page's own reloads while a job of the range is pending or running. */
const DEFAULT_REFRESH = 5;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Pages larger than this (bytes) are sent gzipped to clients that accept it. */
const GZIP_FROM = 16 * 1024;
const gzip = promisify(zlib.gzip);
/** The most documents read from one collection for one page (a runaway collection stays bounded). */
const MAX_DOCS = 100000;

/** Queue states by the cell state they give. BullMQ 5 keeps a paused queue's jobs in `paused`. */
const QUEUE_STATES = Object.freeze({
  active: ['active'],
  waiting: major === 5 ? ['waiting', 'prioritized', 'waiting-children', 'paused'] : ['waiting', 'prioritized', 'waiting-children'],
  delayed: ['delayed'],
  failed: ['failed'],
  completed: ['completed'],
});

/** The range of a request: `start` and `end` when given (both), else the last DEFAULT_DAYS. */
function rangeOf(query, { now = Date.now(), maxDays } = {}) {
  let { start, end } = query;
  if (Array.isArray(start) || Array.isArray(end)) throw new BadRequest('give start and end once each');
  if ((start === undefined || start === '') && (end === undefined || end === '')) {
    end = formatDay(new Date(now));
    start = formatDay(new Date(parseDay(end).getTime() - (DEFAULT_DAYS - 1) * DAY_MS));
  }
  return parseRange(start, end, maxDays === undefined ? {} : { maxDays });
}

/**
 * `?refresh=N`: the seconds between the page's own reloads while jobs are pending (0: never),
 * DEFAULT_REFRESH when absent or not a number of seconds up to an hour.
 */
function refreshOf(query) {
  const value = typeof query.refresh === 'string' && /^\d{1,4}$/.test(query.refresh) ? Number(query.refresh) : DEFAULT_REFRESH;
  return value <= 3600 ? value : DEFAULT_REFRESH;
}

/**
 * ms since the epoch, a Date, or a `YYYY-MM-DD HH:MM…` text in UTC (how the MongoDB-wire
 * server nx-27017 hands back a date set by `$set`) → `YYYY-MM-DD HH:MM UTC`, or null.
 */
function showTime(value) {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value === 'string' && /^\d{4}-\d\d-\d\d[ T]\d\d:\d\d/.test(value)) return `${value.slice(0, 16).replace('T', ' ')} UTC`;
  const date = value instanceof Date ? value : new Date(Number(value));
  if (Number.isNaN(date.getTime())) return null;
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** A text cut to `max` characters (failure reasons and notes can be long). */
function clip(text, max = 300) {
  const s = String(text ?? '');
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * Ids of the queue's jobs by state, for the ids in `wanted` only: one id listing per state
 * (queue.getRanges), so the cost is the queue's size in ids, not a call per cell.
 *
 * @returns {Promise<Map<string, string>>} job id → active | waiting | delayed | failed | completed
 */
async function jobStates(queue, wanted) {
  const entries = Object.entries(QUEUE_STATES);
  const listed = await Promise.all(entries.map(([, types]) => queue.getRanges(types, 0, -1)));
  const states = new Map();
  // Earlier entries win: a job id listed in two states mid-move is shown in the busier one.
  entries.forEach(([state], i) => {
    for (const id of listed[i]) if (wanted.has(id) && !states.has(id)) states.set(id, state);
  });
  return states;
}

/** `find` over the range's days of `branches`, at most MAX_DOCS documents, as an array. */
async function findInRange(collection, filter, projection) {
  return collection.find(filter, { projection, limit: MAX_DOCS, maxTimeMS: 60000 }).toArray();
}

/**
 * The calendar of `branches` × POS 1-2 × `days`.
 *
 * @returns {Promise<{days: string[], rows: object[], totals: object}>} each row
 *   `{branch, pos, cells, enqueueable}`; each cell `{day, state, monitor, detail, jobId}`
 *   where `detail` is a list of lines and `enqueueable` counts the cells the row's button
 *   would enqueue (missing or failed, no job pending, not in the future)
 */
async function coverage({ queue, mongoDb, branches, days, now = Date.now() }) {
  const first = days[0];
  const last = days[days.length - 1];
  const [records, files, monitors] = await Promise.all([
    importRecords(mongoDb.collection('imports'), { branches, days }, { fields: ['rows', 'job', 'startedAt', 'finishedAt', 'untilMs'] }),
    // The worker stores filerecords' and transactions' `date` as midnight UTC, monitorentries'
    // as the YYYY-MM-DD text, and their `pos` as a number and a text respectively.
    findInRange(mongoDb.collection('filerecords'), {
      branch: { $in: branches }, date: { $gte: new Date(`${first}T00:00:00Z`), $lte: new Date(`${last}T00:00:00Z`) },
    }, { _id: 0, branch: 1, pos: 1, date: 1, status: 1, filename: 1 }),
    findInRange(mongoDb.collection('monitorentries'), {
      branch: { $in: branches }, date: { $gte: first, $lte: last },
    }, { _id: 0, branch: 1, pos: 1, date: 1, note: 1, createdAt: 1 }),
  ]);
  const missing = missingShape(branches, days, presentFrom(records));

  const fileStats = new Map();
  for (const f of files) {
    const day = f.date instanceof Date ? formatDay(f.date) : String(f.date).slice(0, 10);
    const key = dayKey(f.branch, Number(f.pos), day);
    const stat = fileStats.get(key) || { count: 0, byStatus: {} };
    stat.count += 1;
    const status = typeof f.status === 'string' ? f.status : 'unknown';
    stat.byStatus[status] = (stat.byStatus[status] || 0) + 1;
    fileStats.set(key, stat);
  }
  const monitorStats = new Map();
  for (const m of monitors) {
    const key = dayKey(m.branch, Number(m.pos), String(m.date));
    const stat = monitorStats.get(key) || { count: 0, last: null };
    stat.count += 1;
    const at = m.createdAt instanceof Date ? m.createdAt.getTime() : 0;
    if (!stat.last || at >= stat.last.at) stat.last = { at, note: m.note };
    monitorStats.set(key, stat);
  }

  const wanted = new Map();
  for (const branch of branches) {
    for (const pos of POS_NUMBERS) for (const day of days) wanted.set(dayJobId({ branch, pos, date: day }), dayKey(branch, pos, day));
  }
  const states = await jobStates(queue, wanted);
  // Job details only where they tell something the imports record does not: pending, running,
  // failed, or finished without finishing an import (no files, for instance).
  const detailIds = [...states].filter(([id, state]) => state !== 'completed' || !isImported(records.get(wanted.get(id))))
    .map(([id]) => id);
  const jobs = new Map();
  const fetched = await Promise.all(detailIds.map((id) => queue.getJob(id).catch(() => null)));
  detailIds.forEach((id, i) => fetched[i] && jobs.set(id, fetched[i]));

  const latest = lastDay(now);
  const totals = { done: 0, missing: 0, failed: 0, running: 0, queued: 0, future: 0, monitor: 0 };
  const rows = [];
  for (const branch of branches) {
    for (const pos of POS_NUMBERS) {
      const missingDays = new Set(missing[branch]?.[String(pos)] || []);
      const cells = [];
      let enqueueable = 0;
      for (const day of days) {
        const key = dayKey(branch, pos, day);
        const jobId = dayJobId({ branch, pos, date: day });
        const record = records.get(key);
        const jobState = states.get(jobId);
        const job = jobs.get(jobId);
        let state;
        if (jobState === 'active') state = 'running';
        else if (jobState === 'waiting' || jobState === 'delayed') state = 'queued';
        else if (!missingDays.has(day)) state = 'done';
        else if (day > latest) state = 'future';
        else if (jobState === 'failed') state = 'failed';
        else state = 'missing';
        if (missingDays.has(day) && state !== 'running' && state !== 'queued' && state !== 'future') enqueueable += 1;
        const monitor = monitorStats.get(key);
        const detail = describeCell({
          state, record, jobState, job, jobId, files: fileStats.get(key), monitor,
        });
        totals[state] += 1;
        if (monitor) totals.monitor += 1;
        cells.push({ day, state, monitor: Boolean(monitor), detail, jobId });
      }
      rows.push({ branch, pos, cells, enqueueable });
    }
  }
  return { days, rows, totals };
}

/** The lines shown on hover for one cell. */
function describeCell({ state, record, jobState: listedState, job, jobId, files, monitor }) {
  let jobState = listedState;
  const lines = [];
  if (record && record.state === 'done') {
    const rows = Number.isFinite(Number(record.rows)) ? Number(record.rows) : '?';
    lines.push(`imported: ${rows} rows${showTime(record.finishedAt) ? `, finished ${showTime(record.finishedAt)}` : ''}`);
    if (record.job) lines.push(`imported by job ${clip(record.job, 120)}`);
    // The job that imported the day, finished since: its line would say the same again.
    if (record.job === jobId && jobState === 'completed') jobState = null;
  } else if (record && record.state === 'running') {
    lines.push(`an import began${showTime(record.startedAt) ? ` ${showTime(record.startedAt)}` : ''} and has not finished${record.job ? ` (job ${clip(record.job, 120)})` : ''}`);
  } else if (state !== 'future') {
    lines.push('no import finished');
  } else {
    lines.push('in the future: its export cannot exist yet');
  }
  if (jobState) {
    const attempts = job ? ` (attempt ${job.attemptsMade ?? 0} of ${job.opts?.attempts ?? 1})` : '';
    if (jobState === 'active') {
      lines.push(`last job: ${jobId}, running${showTime(job?.processedOn) ? ` since ${showTime(job.processedOn)}` : ''}${attempts}`);
    } else if (jobState === 'waiting') {
      lines.push(`last job: ${jobId}, waiting${attempts}`);
    } else if (jobState === 'delayed') {
      const due = job && job.timestamp !== undefined ? showTime(Number(job.timestamp) + Number(job.delay || 0)) : null;
      lines.push(`last job: ${jobId}, delayed${due ? ` until ${due}` : ''}${attempts}`);
    } else if (jobState === 'failed') {
      lines.push(`last job: ${jobId}, failed${showTime(job?.finishedOn) ? ` ${showTime(job.finishedOn)}` : ''}${attempts}`);
    } else {
      lines.push(`last job: ${jobId}, completed${showTime(job?.finishedOn) ? ` ${showTime(job.finishedOn)}` : ''}`);
      const note = job?.returnvalue && typeof job.returnvalue === 'object' ? job.returnvalue.note : null;
      if (note) lines.push(`job result: ${clip(note)}`);
    }
    // A retried job keeps its last failure; show it while it waits too.
    if (job?.failedReason) lines.push(`failure reason: ${clip(job.failedReason)}`);
  }
  if (files) {
    const parts = Object.entries(files.byStatus).map(([status, n]) => `${n} ${status}`).join(', ');
    lines.push(`files: ${files.count} (${parts})`);
  }
  if (monitor) {
    lines.push(`monitor entries: ${monitor.count}${monitor.last?.note ? `; latest: ${clip(monitor.last.note)}` : ''}`);
  }
  return lines;
}

/** Checks a same-origin request: a browser sends Origin on a POST, and it must be this host. */
function sameOrigin(req) {
  const site = req.headers['sec-fetch-site'];
  if (site && site !== 'same-origin') return false;
  const origin = req.headers.origin;
  if (!origin) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/**
 * Mounts the coverage routes behind `guard` (the board's basic auth).
 *
 * @param {import('express').Express} app
 * @param {object} options
 * @param {Function} options.guard    authentication middleware
 * @param {Function} options.posts    the POST rate limit shared with POST /missing
 * @param {Function} options.ready    async () → throws Unavailable while Redis is down
 * @param {Function} options.enqueue  async (days) → {jobIds, skipped}: app.js enqueueDays
 */
function mountCoverage(app, {
  queue, mongoDb, branches, guard, posts, ready, enqueue, log, maxJobs, maxRangeDays, mongoError,
}) {
  const rangeOptions = maxRangeDays === undefined ? {} : { maxDays: maxRangeDays };

  app.get('/coverage', guard, async (req, res) => {
    const nonce = crypto.randomBytes(16).toString('base64');
    res.set('Content-Security-Policy', [
      "default-src 'none'", `style-src 'nonce-${nonce}'`, `script-src 'nonce-${nonce}'`, "connect-src 'self'",
      "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'",
    ].join('; '));
    res.set('Cache-Control', 'no-store');
    let range;
    try {
      range = rangeOf(req.query, rangeOptions);
    } catch (err) {
      if (!(err instanceof BadRequest)) throw err;
      res.status(400).type('html').send(renderError({ message: err.message, query: req.query, nonce }));
      return;
    }
    await ready();
    let data;
    try {
      data = await coverage({ queue, mongoDb, branches, days: range.days });
    } catch (err) {
      throw mongoError(err);
    }
    const html = renderPage({
      ...data, start: range.days[0], end: range.days[range.days.length - 1], refresh: refreshOf(req.query), nonce,
    });
    res.type('html');
    // A year of 28 branches is 20,000 cells and about 5 MB of HTML, but repetitive: gzip (in
    // Node, no middleware) makes it a few hundred KB.
    res.vary('Accept-Encoding');
    if (html.length > GZIP_FROM && req.acceptsEncodings('gzip', 'identity') === 'gzip') {
      res.set('Content-Encoding', 'gzip');
      res.send(await gzip(html));
      return;
    }
    res.send(html);
  });

  app.post('/coverage/enqueue', guard, posts, express.json({ limit: '16kb' }), async (req, res) => {
    if (!sameOrigin(req)) {
      res.status(403).json({ error: 'cross-site requests are refused' });
      return;
    }
    // A JSON body needs a CORS preflight from another site, which this app never grants: a
    // form on another site cannot submit here with the operator's credentials.
    if (!req.is('application/json')) throw new BadRequest('send the body as application/json: {"start", "end", "branch", "pos"}');
    const body = req.body && typeof req.body === 'object' ? req.body : {};
    const range = parseRange(body.start, body.end, rangeOptions);
    let rowBranches = branches;
    let posKeys = POS_NUMBERS.map(String);
    if (body.branch !== undefined || body.pos !== undefined) {
      if (!branches.includes(body.branch)) throw new BadRequest(`branch ${JSON.stringify(String(body.branch)).slice(0, 80)} is not one of the page's branches`);
      if (!POS_NUMBERS.includes(Number(body.pos)) || String(Number(body.pos)) !== String(body.pos)) throw new BadRequest('pos must be 1 or 2');
      rowBranches = [body.branch];
      posKeys = [String(body.pos)];
    }
    // Days after today cannot be fetched (POST /missing refuses them): the range stops at today.
    const latest = lastDay();
    const days = range.days.filter((day) => day <= latest);
    let present;
    try {
      present = await presentDays(mongoDb.collection('imports'), { branches: rowBranches, days });
    } catch (err) {
      throw mongoError(err);
    }
    const shape = missingShape(rowBranches, days, present);
    const branchesMissing = {};
    for (const [branch, byPos] of Object.entries(shape)) {
      const kept = Object.fromEntries(Object.entries(byPos).filter(([pos]) => posKeys.includes(pos)));
      if (Object.keys(kept).length > 0) branchesMissing[branch] = kept;
    }
    const jobs = jobsFromBody({ branches_missing: branchesMissing }, maxJobs === undefined ? {} : { maxJobs });
    if (jobs.length === 0) {
      res.status(202).json({ jobIds: [], count: 0, skipped: [] });
      return;
    }
    await ready();
    const { jobIds, skipped } = await enqueue(jobs);
    log('info', 'enqueued missing POS days from the coverage page', {
      count: jobIds.length, skipped: skipped.length, branch: body.branch, pos: body.pos, start: body.start, end: body.end,
    });
    res.status(202).json({ jobIds, count: jobIds.length, skipped });
  });
}

module.exports = { DEFAULT_DAYS, DEFAULT_REFRESH, coverage, rangeOf, refreshOf, mountCoverage, describeCell };
