'use strict';
// bench/lib/chaos_check.js — the end state of a chaos run, read from Redis and MongoDB (never
// from the workers' own accounts), printed as one JSON object for bench/chaos.sh.
//
//   node chaos_check.js IDS_FILE JOBS_JSON ROWS_JSONL
//   env: NODE_EXAMPLE, REDIS_JOB_URL, QUEUE_NAME, BULL_PREFIX, MONGO_CHECK_URI (with the
//        database), DROP_DB=1 (drop that database afterwards: runs on a MONGO_URI of yours)
//
// Queue: for every job id the producer printed, the state it is in (completed, failed, or one
// of the pending lists); `lost` are ids in none of them. Also attempts used, jobs parked in
// `delayed` behind another job of their day (a "waiting: …" log line), failed reasons.
// Database: per day of JOBS_JSON, the transactions' `_id`s against the row keys of ROWS_JSONL
// (missing, extra), rows of days that are no job's, the day's `imports` record, and the
// monitor entries.

const fs = require('fs');
const Redis = require(`${process.env.NODE_EXAMPLE}/node_modules/ioredis`);
const { MongoClient } = require(`${process.env.NODE_EXAMPLE}/node_modules/mongodb`);

const dayKey = (branch, pos, date) => `${branch}|${Number(pos)}|${date}`;

async function queueState(ids) {
  const r = new Redis(process.env.REDIS_JOB_URL, { maxRetriesPerRequest: 3 });
  const p = `${process.env.BULL_PREFIX}:${process.env.QUEUE_NAME}:`;
  const sets = {};
  for (const k of ['completed', 'failed', 'delayed', 'prioritized', 'waiting-children']) {
    sets[k] = new Set(await r.zrange(p + k, 0, -1));
  }
  for (const k of ['wait', 'active', 'paused']) sets[k] = new Set(await r.lrange(p + k, 0, -1));
  const out = {
    added: ids.length, completed: 0, failed: 0, pending: 0, lost: 0, lostIds: [],
    retried: 0, maxAttempts: 0, parked: 0, failedReasons: [], failedDays: [],
  };
  for (const id of ids) {
    const state = Object.keys(sets).find((k) => sets[k].has(id));
    const [atm, reason, data] = await r.hmget(p + id, 'atm', 'failedReason', 'data');
    if (state === 'completed') out.completed++;
    else if (state === 'failed') {
      out.failed++;
      out.failedReasons.push(`${id}: ${reason}`);
      try {
        const d = JSON.parse(data);
        out.failedDays.push(dayKey(d.branch, d.pos, d.date));
      } catch {
        out.failedDays.push(`job ${id}: unreadable data`);
      }
    } else if (state) out.pending++;
    else {
      out.lost++;
      out.lostIds.push(id);
    }
    if (Number(atm) > 1) out.retried++;
    out.maxAttempts = Math.max(out.maxAttempts, Number(atm) || 0);
    const logs = await r.lrange(`${p}${id}:logs`, 0, -1);
    if (logs.some((l) => l.startsWith('waiting'))) out.parked++;
  }
  await r.quit();
  return out;
}

async function databaseState(jobs, rowsFile) {
  const expected = new Map(); // day -> Set of row keys
  for (const j of jobs) expected.set(dayKey(j.data.branch, j.data.pos, j.data.date), new Set());
  for (const line of fs.readFileSync(rowsFile, 'utf8').split('\n')) {
    if (!line) continue;
    const row = JSON.parse(line);
    const set = expected.get(dayKey(row.branch, row.pos, row.date));
    if (set) set.add(row.rowKey);
  }
  const client = new MongoClient(process.env.MONGO_CHECK_URI, { serverSelectionTimeoutMS: 20000 });
  await client.connect();
  try {
    const db = client.db();
    const stored = new Map();
    let guards = 0;
    let strays = 0;
    const cursor = db.collection('transactions').find({}, { projection: { _id: 1, branch: 1, pos: 1, date: 1, kind: 1 } });
    for await (const d of cursor) {
      if (d.branch === undefined) {
        if (d.kind === 'importFence') guards++;
        else strays++;
        continue;
      }
      const date = d.date instanceof Date ? d.date.toISOString().slice(0, 10) : String(d.date);
      const key = dayKey(d.branch, d.pos, date);
      if (!stored.has(key)) stored.set(key, []);
      stored.get(key).push(String(d._id));
    }
    const records = new Map();
    for (const rec of await db.collection('imports').find({}).toArray()) records.set(String(rec._id), rec);
    const monitor = await db.collection('monitorentries').find({}).toArray();
    const out = {
      days: expected.size, expectedRows: 0, rows: 0, exactDays: 0, missing: 0, extra: 0,
      duplicates: 0, otherDayRows: 0, guards, strays, importsDone: 0, importsNotDone: [],
      badDays: [], monitorEntries: monitor.length, monitorDays: [],
    };
    for (const [day, keys] of expected) {
      out.expectedRows += keys.size;
      const ids = stored.get(day) || [];
      stored.delete(day);
      out.rows += ids.length;
      const seen = new Set(ids);
      const dup = ids.length - seen.size;
      let missing = 0;
      let extra = 0;
      for (const k of keys) if (!seen.has(k)) missing++;
      for (const k of seen) if (!keys.has(k)) extra++;
      out.missing += missing;
      out.extra += extra;
      out.duplicates += dup;
      if (missing || extra || dup) out.badDays.push(`${day}: ${ids.length} rows of ${keys.size} (missing ${missing}, extra ${extra}, duplicate ${dup})`);
      else out.exactDays++;
      const rec = records.get(day);
      if (rec && rec.state === 'done') out.importsDone++;
      else out.importsNotDone.push(`${day}: ${rec ? `state ${rec.state}, fence ${rec.fence}, job ${rec.job}` : 'no imports record'}`);
    }
    for (const ids of stored.values()) out.otherDayRows += ids.length;
    out.monitorDays = monitor.map((m) => `${dayKey(m.branch, m.pos, m.date)}: ${m.note}`);
    if (process.env.DROP_DB === '1') await db.dropDatabase();
    return out;
  } finally {
    await client.close();
  }
}

(async () => {
  const [idsFile, jobsFile, rowsFile] = process.argv.slice(2);
  const ids = fs.readFileSync(idsFile, 'utf8').split('\n').filter(Boolean);
  const jobs = JSON.parse(fs.readFileSync(jobsFile, 'utf8'));
  const queue = await queueState(ids);
  const database = await databaseState(jobs, rowsFile);
  console.log(JSON.stringify({ queue, database }));
})().catch((e) => {
  console.error(`chaos_check.js: ${e.stack || e.message}`);
  process.exit(1);
});
