'use strict';
// Missing POS days: the `branches_missing` shape the legacy tool exchanged
// `{BRANCH: {"1": ["YYYY-MM-DD", …], "2": […]}}`, validated on the way in (POST /missing) and
// computed from the worker's `imports` records on the way out (GET /missing): a day is present
// when its import finished, not when some of its rows exist.

/** The most jobs one POST /missing may enqueue. */
const MAX_JOBS = 10000;
/** The widest GET /missing range, in days (both ends included). */
const MAX_RANGE_DAYS = 366;
/** The most distinct days one POST /missing may name (a year, leap day included). */
const MAX_DAYS_PER_REQUEST = 366;
/** The earliest day POST /missing accepts; the POS exports start long after it. */
const FIRST_DAY = '2000-01-01';
/** The POS terminals of every branch. */
const POS_NUMBERS = Object.freeze([1, 2]);

const BRANCH_RE = /^[A-Za-z0-9-]{1,64}$/;
const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DAY_MS = 24 * 60 * 60 * 1000;

/** A 400 answer: `message` is what the client is told. */
class BadRequest extends Error {
  constructor(message) {
    super(message);
    this.name = 'BadRequest';
    this.status = 400;
  }
}

function isPlainObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isBranchCode(value) {
  return typeof value === 'string' && BRANCH_RE.test(value);
}

/**
 * `YYYY-MM-DD` naming a real calendar day → that day's midnight UTC as a Date; anything else
 * (wrong shape, 2026-02-30, non-strings) → null.
 */
function parseDay(value) {
  if (typeof value !== 'string') return null;
  const m = DAY_RE.exec(value);
  if (!m) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear keeps the year as written.
  date.setUTCFullYear(year);
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) {
    return null;
  }
  return date;
}

/** A Date at midnight UTC → `YYYY-MM-DD`. */
function formatDay(date) {
  return date.toISOString().slice(0, 10);
}

/** JSON-ish rendering of a client's value for error messages, kept short. */
function show(value) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch {
    text = String(value);
  }
  if (text === undefined) text = String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * The latest day POST /missing accepts: today where the calendar is furthest ahead (UTC+14),
 * so a branch's "today" is accepted wherever it is, and no later.
 */
function lastDay(now = Date.now()) {
  return formatDay(new Date(now + 14 * 60 * 60 * 1000));
}

/**
 * Validates a POST /missing body and lists the jobs it asks for: one `{branch, pos, date}` per
 * distinct (branch, pos, date), in the body's order (a date listed twice for the same branch
 * and POS gives one job). Days run from FIRST_DAY to today ([`lastDay`]); at most
 * `maxDays` distinct days and `maxJobs` jobs per request. Throws BadRequest naming the first
 * problem found.
 *
 * @returns {{branch: string, pos: number, date: string}[]}
 */
function jobsFromBody(body, { maxJobs = MAX_JOBS, maxDays = MAX_DAYS_PER_REQUEST, now = Date.now() } = {}) {
  const latest = lastDay(now);
  const days = new Set();
  if (!isPlainObject(body)) {
    throw new BadRequest('the body must be a JSON object {"branches_missing": {BRANCH: {"1": [dates], "2": [dates]}}}');
  }
  const missing = body.branches_missing;
  if (missing === undefined) throw new BadRequest('branches_missing is required');
  if (!isPlainObject(missing)) {
    throw new BadRequest(`branches_missing must be an object {BRANCH: {"1": [dates], "2": [dates]}}, got ${show(missing)}`);
  }
  const jobs = [];
  for (const [branch, byPos] of Object.entries(missing)) {
    if (!isBranchCode(branch)) {
      throw new BadRequest(`branch code ${show(branch)} is not 1-64 letters, digits or "-"`);
    }
    if (!isPlainObject(byPos)) {
      throw new BadRequest(`branches_missing.${branch} must be an object {"1": [dates], "2": [dates]}, got ${show(byPos)}`);
    }
    for (const [posKey, dates] of Object.entries(byPos)) {
      if (posKey !== '1' && posKey !== '2') {
        throw new BadRequest(`branches_missing.${branch}: POS must be "1" or "2", got ${show(posKey)}`);
      }
      if (!Array.isArray(dates)) {
        throw new BadRequest(`branches_missing.${branch}.${posKey} must be an array of YYYY-MM-DD dates, got ${show(dates)}`);
      }
      const seen = new Set();
      for (const date of dates) {
        if (!parseDay(date)) {
          throw new BadRequest(`branches_missing.${branch}.${posKey}: ${show(date)} is not a real YYYY-MM-DD date`);
        }
        if (date < FIRST_DAY || date > latest) {
          throw new BadRequest(`branches_missing.${branch}.${posKey}: ${date} is outside ${FIRST_DAY}..${latest} (today)`);
        }
        if (seen.has(date)) continue;
        seen.add(date);
        days.add(date);
        if (days.size > maxDays) {
          throw new BadRequest(`too many days: at most ${maxDays} distinct dates per request`);
        }
        if (jobs.length >= maxJobs) {
          throw new BadRequest(`too many jobs: at most ${maxJobs} (branch, pos, date) per request`);
        }
        jobs.push({ branch, pos: Number(posKey), date });
      }
    }
  }
  return jobs;
}

/**
 * Validates GET /missing's `start` and `end` (real days, start <= end, at most `maxDays` days
 * both included). Throws BadRequest.
 *
 * @returns {{start: Date, end: Date, days: string[]}} days as YYYY-MM-DD, ascending
 */
function parseRange(start, end, { maxDays = MAX_RANGE_DAYS } = {}) {
  if (start === undefined || end === undefined) {
    throw new BadRequest('start and end are required: ?start=YYYY-MM-DD&end=YYYY-MM-DD');
  }
  const from = parseDay(start);
  if (!from) throw new BadRequest(`start ${show(start)} is not a real YYYY-MM-DD date`);
  const to = parseDay(end);
  if (!to) throw new BadRequest(`end ${show(end)} is not a real YYYY-MM-DD date`);
  if (to < from) throw new BadRequest(`end ${end} is before start ${start}`);
  const count = Math.round((to - from) / DAY_MS) + 1;
  if (count > maxDays) {
    throw new BadRequest(`the range ${start}..${end} has ${count} days; at most ${maxDays}`);
  }
  const days = Array.from({ length: count }, (_, i) => formatDay(new Date(from.getTime() + i * DAY_MS)));
  return { start: from, end: to, days };
}

/** The key of one (branch, pos, day); branch codes have no `|`. */
function dayKey(branch, pos, day) {
  return `${branch}|${pos}|${day}`;
}

/**
 * The job id of one POS day: stable, so the same day is never queued twice (POST /missing,
 * the coverage page's buttons, and the page's lookup of each day's job).
 */
function dayJobId({ branch, pos, date }) {
  return `day.${branch}.${pos}.${date}`;
}

/** How many record ids one `$in` query names at most. */
const IDS_PER_QUERY = 5000;

/**
 * Whether a day's `imports` record says its import finished: the one definition of "present".
 * Rows alone never make a day present: an import that crashed, was handed back or hit an
 * outage leaves some rows and its record `running`, and such a day must be reported missing
 * (and so enqueued again) until an import finishes it. A day being imported right now is
 * missing too; enqueueing it again is harmless (the duplicate job waits for the running one).
 */
function isImported(record) {
  return Boolean(record) && record.state === 'done';
}

/**
 * The worker's `imports` records of every branch × POS 1-2 × day of `days` that has one
 * (`_id` `BRANCH|pos|YYYY-MM-DD`, the same shape as dayKey), by dayKey. One `find` with
 * `_id: {$in: …}` per IDS_PER_QUERY days; `fields` picks what else is read besides `state`.
 *
 * @returns {Promise<Map<string, object>>}
 */
async function importRecords(collection, { branches, days }, { fields = [] } = {}) {
  const ids = branches.flatMap((branch) => POS_NUMBERS.flatMap((pos) => days.map((day) => dayKey(branch, pos, day))));
  const projection = { _id: 1, state: 1 };
  for (const field of fields) projection[field] = 1;
  const records = new Map();
  for (let i = 0; i < ids.length; i += IDS_PER_QUERY) {
    const chunk = ids.slice(i, i + IDS_PER_QUERY);
    const cursor = collection.find({ _id: { $in: chunk } }, { projection, maxTimeMS: 60000 });
    for await (const record of cursor) {
      if (typeof record._id === 'string') records.set(record._id, record);
    }
  }
  return records;
}

/** The keys of `records` (importRecords) whose import finished ([`isImported`]). */
function presentFrom(records) {
  const present = new Set();
  for (const [key, record] of records) if (isImported(record)) present.add(key);
  return present;
}

/**
 * The (branch, pos, day) keys whose import finished: the worker's `imports` record of the day
 * says `state: "done"` ([`isImported`]).
 *
 * @returns {Promise<Set<string>>} dayKey(branch, pos, 'YYYY-MM-DD') of the days present
 */
async function presentDays(collection, { branches, days }) {
  return presentFrom(await importRecords(collection, { branches, days }));
}

/**
 * Every branch × POS 1-2 × day of `days`, less `present`, in the `branches_missing` shape:
 * branches in list order, POS keys "1" then "2", dates ascending; a POS with nothing missing is
 * left out, and so is a branch with nothing missing.
 */
function missingShape(branches, days, present) {
  const result = {};
  for (const branch of branches) {
    const byPos = {};
    for (const pos of POS_NUMBERS) {
      const dates = days.filter((day) => !present.has(dayKey(branch, pos, day)));
      if (dates.length > 0) byPos[String(pos)] = dates;
    }
    if (Object.keys(byPos).length > 0) result[branch] = byPos;
  }
  return result;
}

module.exports = {
  MAX_JOBS,
  MAX_RANGE_DAYS,
  MAX_DAYS_PER_REQUEST,
  FIRST_DAY,
  lastDay,
  POS_NUMBERS,
  BadRequest,
  isBranchCode,
  parseDay,
  formatDay,
  jobsFromBody,
  parseRange,
  dayKey,
  dayJobId,
  isImported,
  importRecords,
  presentFrom,
  presentDays,
  missingShape,
};
