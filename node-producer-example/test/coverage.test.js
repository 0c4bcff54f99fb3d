'use strict';
// The coverage calendar's data side (src/coverage.js, src/coverage-page.js): days seeded in
// every state, in MongoDB (the worker's `imports`, `filerecords` and `monitorentries`
// documents) and in the queue (jobs moved by hand with BullMQ's own Worker API: failed,
// completed, active, waiting, delayed), then GET /coverage's HTML read cell by cell: each
// cell's state, its monitor flag and its hover detail. Then the enqueue buttons' route: the
// days it enqueues are GET /missing's, under POST /missing's job ids, pending days skipped.
// No worker runs here: the states are placed, not produced (the browser test runs the worker).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');
const { connectionOptions } = require('../src/queue');
const { createApp } = require('../src/app');
const { silent } = require('../src/log');
const { LEGACY_BRANCHES } = require('../src/branches');

const redis = s.useRedis();
const mongo = s.useMongo();

const AUTH = Object.freeze({ user: 'admin', password: 'coverage-password' });
const BASIC = `Basic ${Buffer.from(`${AUTH.user}:${AUTH.password}`).toString('base64')}`;
const BRANCHES = ['BMC', 'BIA'];
const RANGE = '?start=2026-02-08&end=2026-02-10';
/** Text a failure reason and a monitor note carry, to prove the page escapes data. */
const HOSTILE = '<script>alert(1)</script>"\'&';

/** Listens on a free port; closed after the test. */
async function serve(t, app) {
  const base = await s.listenApp(t, app);
  return async (method, url, { json, headers = {}, auth = BASIC } = {}) => {
    const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(20000) };
    if (auth) init.headers.authorization = auth;
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(base + url, init);
    const text = await res.text();
    const isJson = (res.headers.get('content-type') || '').includes('application/json');
    return { status: res.status, headers: res.headers, body: isJson ? JSON.parse(text) : text };
  };
}

/** The app on a fresh queue and database. */
async function harness(t, { boardAuth = AUTH } = {}) {
  const h = await s.setup(t, redis);
  const mongoDb = mongo.client.db(mongo.server.uniqueDbName('coverage'));
  t.after(() => mongoDb.dropDatabase().catch(() => {}));
  const app = createApp({ queue: h.queue, mongoDb, branches: BRANCHES, boardAuth, log: silent, apiToken: null });
  return { h, mongoDb, request: await serve(t, app) };
}

function unescapeHtml(text) {
  return text.replace(/&(lt|gt|quot|#39|amp);/g, (_, e) => ({ lt: '<', gt: '>', quot: '"', '#39': "'", amp: '&' })[e]);
}

/** The page's cells by `branch|pos|day`: {state, monitor, title}; also the rows' buttons. */
function parsePage(html) {
  const cells = new Map();
  const buttons = new Map();
  for (const row of html.split('<tr data-branch=').slice(1)) {
    const [, branch, pos] = /^"([^"]*)" data-pos="(\d)"/.exec(row);
    for (const m of row.matchAll(/<td class="cell ([^"]*)" tabindex="0" data-day="([^"]*)" data-state="([^"]*)" data-monitor="([01])" title="([^"]*)"><\/td>/g)) {
      cells.set(`${branch}|${pos}|${m[2]}`, { classes: m[1], state: m[3], monitor: m[4] === '1', title: unescapeHtml(m[5]) });
    }
    const button = /data-enqueue="row" data-branch="([^"]*)" data-pos="(\d)" data-count="(\d+)"/.exec(row);
    if (button) buttons.set(`${button[1]}|${button[2]}`, Number(button[3]));
  }
  return { cells, buttons };
}

/** Puts jobs of the queue into each state by hand, with BullMQ's manual-processing API. */
async function seedQueue(t, h) {
  const worker = new h.bullmq.Worker(h.queueName, null, {
    connection: connectionOptions(h.redis.url(1)), prefix: s.PREFIX, autorun: false, lockDuration: 120000,
  });
  worker.on('error', () => {});
  t.after(() => worker.close(true).catch(() => {}));
  const token = 'coverage-test-token';
  const add = (branch, pos, date, opts = {}) => h.queue.add('fetch-job', { branch, pos, date }, {
    jobId: `day.${branch}.${pos}.${date}`, attempts: 1, ...opts,
  });
  const claim = async (id) => {
    const job = await worker.getNextJob(token, { block: false });
    assert.equal(job && job.id, id, 'the job claimed is the one just added');
    return job;
  };

  await add('BIA', 1, '2026-02-08');
  await (await claim('day.BIA.1.2026-02-08')).moveToFailed(new Error(`listing failed: ${HOSTILE}`), token, false);
  await add('BIA', 2, '2026-02-09');
  await (await claim('day.BIA.2.2026-02-09')).moveToCompleted({ note: 'no files', rows: { imported: 0 } }, token, false);
  await add('BIA', 1, '2026-02-09', { attempts: 3 });
  await claim('day.BIA.1.2026-02-09'); // stays active
  await add('BIA', 1, '2026-02-10');
  await add('BIA', 2, '2026-02-08', { delay: 10 * 60 * 1000 });

  const state = (id) => h.queue.getJobState(id);
  assert.equal(await state('day.BIA.1.2026-02-08'), 'failed');
  assert.equal(await state('day.BIA.2.2026-02-09'), 'completed');
  assert.equal(await state('day.BIA.1.2026-02-09'), 'active');
  assert.equal(await state('day.BIA.1.2026-02-10'), 'waiting');
  assert.equal(await state('day.BIA.2.2026-02-08'), 'delayed');
}

/** The worker's documents, as it writes them (src/pipeline/import.rs). */
async function seedMongo(mongoDb) {
  const at = (iso) => new Date(iso);
  await mongoDb.collection('imports').insertMany([
    {
      _id: 'BMC|1|2026-02-08', state: 'done', fence: 1, job: 'day.BMC.1.2026-02-08', rows: 455, removed: 0,
      startedAt: at('2026-02-10T01:00:00Z'), finishedAt: at('2026-02-10T01:02:00Z'), branch: 'BMC', pos: 1, date: '2026-02-08',
    },
    {
      _id: 'BMC|1|2026-02-09', state: 'done', fence: 2, job: 'day.BMC.1.2026-02-09', rows: 12, removed: 3,
      startedAt: at('2026-02-11T01:00:00Z'), finishedAt: at('2026-02-11T01:00:30Z'), branch: 'BMC', pos: 1, date: '2026-02-09',
    },
    // An import that crashed: its record stays `running`, and the day is missing.
    {
      _id: 'BMC|2|2026-02-08', state: 'running', fence: 1, job: 'day.BMC.2.2026-02-08', untilMs: 1,
      startedAt: at('2026-02-10T03:00:00Z'), finishedAt: null, branch: 'BMC', pos: 2, date: '2026-02-08',
    },
    // Outside the range: never shown.
    { _id: 'BMC|1|2026-02-11', state: 'done', fence: 1, job: 'x', rows: 1, branch: 'BMC', pos: 1, date: '2026-02-11' },
  ]);
  await mongoDb.collection('filerecords').insertMany([
    { branch: 'BMC', pos: 1, date: at('2026-02-08T00:00:00Z'), filename: 'a_BMC_1_rd5000_2026-02-08_20-00_.csv', status: 'parsed' },
    { branch: 'BMC', pos: 1, date: at('2026-02-08T00:00:00Z'), filename: 'a_BMC_1_rd5800_2026-02-08_20-00_.csv', status: 'parsed' },
    { branch: 'BIA', pos: 1, date: at('2026-02-08T00:00:00Z'), filename: 'a_BIA_1_rd5000_2026-02-08_20-00_.csv', status: 'error' },
  ]);
  await mongoDb.collection('monitorentries').insertMany([
    { branch: 'BMC', pos: '1', date: '2026-02-09', note: '3 rows dated 2026-02-08', createdAt: at('2026-02-11T01:00:10Z') },
    { branch: 'BMC', pos: '1', date: '2026-02-09', note: `2 rows dated 2026-02-07 ${HOSTILE}`, createdAt: at('2026-02-11T01:00:20Z') },
    { branch: 'BIA', pos: '2', date: '2026-02-10', note: 'redirect refused: http://evil/ is not on the origin', createdAt: at('2026-02-12T00:00:00Z') },
    { branch: 'BIA', pos: '2', date: '2026-02-11', note: 'outside the range', createdAt: at('2026-02-12T00:00:00Z') },
  ]);
}

describe(`coverage page (bullmq ${version}, mongo=${process.env.MONGO_URI ? 'MONGO_URI' : 'nx-27017'})`, () => {
  it('shows each day of each branch and POS in its state, with its detail on hover, escaped', async (t) => {
    const { h, mongoDb, request } = await harness(t);
    await seedMongo(mongoDb);
    await seedQueue(t, h);

    const res = await request('GET', `/coverage${RANGE}`);
    assert.equal(res.status, 200, res.body);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    assert.match(res.headers.get('content-security-policy'), /script-src 'nonce-[^']+'/);
    const html = res.body;
    const { cells, buttons } = parsePage(html);
    assert.equal(cells.size, 2 * 2 * 3, [...cells.keys()].join(' '));
    const states = Object.fromEntries([...cells].map(([k, c]) => [k, `${c.state}${c.monitor ? '+monitor' : ''}`]));
    assert.deepEqual(states, {
      'BMC|1|2026-02-08': 'done',
      'BMC|1|2026-02-09': 'done+monitor',
      'BMC|1|2026-02-10': 'missing',
      'BMC|2|2026-02-08': 'missing',
      'BMC|2|2026-02-09': 'missing',
      'BMC|2|2026-02-10': 'missing',
      'BIA|1|2026-02-08': 'failed',
      'BIA|1|2026-02-09': 'running',
      'BIA|1|2026-02-10': 'queued',
      'BIA|2|2026-02-08': 'queued',
      'BIA|2|2026-02-09': 'missing',
      'BIA|2|2026-02-10': 'missing+monitor',
    });
    // The colour class follows the state, and the monitor marker the flag.
    for (const cell of cells.values()) {
      assert.ok(cell.classes.split(' ').includes(`s-${cell.state}`), cell.classes);
      assert.equal(cell.classes.split(' ').includes('m'), cell.monitor);
    }

    const title = (key) => cells.get(key).title;
    assert.match(title('BMC|1|2026-02-08'), /^BMC POS 1 · 2026-02-08: done\n/);
    assert.match(title('BMC|1|2026-02-08'), /imported: 455 rows, finished 2026-02-10 01:02 UTC/);
    assert.match(title('BMC|1|2026-02-08'), /imported by job day\.BMC\.1\.2026-02-08/);
    assert.match(title('BMC|1|2026-02-08'), /files: 2 \(2 parsed\)/);
    assert.match(title('BMC|1|2026-02-09'), /imported: 12 rows/);
    assert.ok(title('BMC|1|2026-02-09').includes(`monitor entries: 2; latest: 2 rows dated 2026-02-07 ${HOSTILE}`), title('BMC|1|2026-02-09'));
    assert.match(title('BMC|1|2026-02-10'), /no import finished/);
    assert.doesNotMatch(title('BMC|1|2026-02-10'), /last job/);
    assert.match(title('BMC|2|2026-02-08'), /an import began 2026-02-10 03:00 UTC and has not finished \(job day\.BMC\.2\.2026-02-08\)/);
    assert.ok(title('BIA|1|2026-02-08').includes(`failure reason: listing failed: ${HOSTILE}`), title('BIA|1|2026-02-08'));
    assert.match(title('BIA|1|2026-02-08'), /last job: day\.BIA\.1\.2026-02-08, failed \d{4}-\d\d-\d\d \d\d:\d\d UTC \(attempt 1 of 1\)/);
    assert.match(title('BIA|1|2026-02-08'), /files: 1 \(1 error\)/);
    assert.match(title('BIA|1|2026-02-09'), /last job: day\.BIA\.1\.2026-02-09, running since .* \(attempt 0 of 3\)/);
    assert.match(title('BIA|1|2026-02-10'), /last job: day\.BIA\.1\.2026-02-10, waiting/);
    assert.match(title('BIA|2|2026-02-08'), /last job: day\.BIA\.2\.2026-02-08, delayed until \d{4}-/);
    assert.match(title('BIA|2|2026-02-09'), /last job: day\.BIA\.2\.2026-02-09, completed .*\njob result: no files/);
    assert.match(title('BIA|2|2026-02-10'), /monitor entries: 1; latest: redirect refused/);

    // Data never reaches the page as markup: only the page's own script tag.
    assert.equal(html.split('<script').length - 1, 1, 'one script element');
    assert.ok(!html.includes(HOSTILE), 'the hostile text appears only escaped');
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;'));

    // The buttons count what they would enqueue: missing or failed days with no job pending.
    assert.deepEqual(Object.fromEntries(buttons), { 'BMC|1': 1, 'BMC|2': 3, 'BIA|1': 1, 'BIA|2': 2 });
    assert.match(html, /data-enqueue="range" data-count="7"/);
    assert.match(html, /data-pending="3" data-refresh="5"/, 'three cells pending: the page refreshes itself every 5 s');
    assert.match(html, /refreshing every 5 s while jobs are pending \(<a href="coverage\?start=2026-02-08&amp;end=2026-02-10&amp;refresh=0">stop<\/a>\)/);
    const still = (await request('GET', `/coverage${RANGE}&refresh=0`)).body;
    assert.match(still, /data-pending="3" data-refresh="0"/);
    assert.doesNotMatch(still, /refreshing every/);
    assert.match((await request('GET', `/coverage${RANGE}&refresh=soon`)).body, /data-refresh="5"/, 'a bad refresh is the default');
  });

  it('enqueues the missing days of a row, then of the range, with POST /missing\'s ids and dedup', async (t) => {
    const { h, mongoDb, request } = await harness(t);
    await seedMongo(mongoDb);
    await seedQueue(t, h);

    const row = await request('POST', '/coverage/enqueue', { json: { start: '2026-02-08', end: '2026-02-10', branch: 'BIA', pos: 2 } });
    assert.equal(row.status, 202, JSON.stringify(row.body));
    assert.deepEqual(row.body.jobIds, ['day.BIA.2.2026-02-09', 'day.BIA.2.2026-02-10']);
    assert.deepEqual(row.body.skipped, [
      { branch: 'BIA', pos: 2, date: '2026-02-08', jobId: 'day.BIA.2.2026-02-08', reason: 'delayed (waiting for a retry)' },
    ]);
    // The completed job of 02-09 was replaced by a fresh one, as POST /missing does.
    const fresh = await h.queue.getJob('day.BIA.2.2026-02-09');
    assert.equal(await fresh.getState(), 'waiting');
    assert.deepEqual(fresh.data, { branch: 'BIA', pos: 2, date: '2026-02-09' });
    assert.equal(fresh.name, 'fetch-job');
    assert.equal(fresh.opts.attempts, 3);
    assert.deepEqual(fresh.opts.backoff, { type: 'exponential', delay: 1000 });

    const range = await request('POST', '/coverage/enqueue', { json: { start: '2026-02-08', end: '2026-02-10' } });
    assert.equal(range.status, 202, JSON.stringify(range.body));
    assert.deepEqual(range.body.jobIds, [
      'day.BMC.1.2026-02-10', 'day.BMC.2.2026-02-08', 'day.BMC.2.2026-02-09', 'day.BMC.2.2026-02-10', 'day.BIA.1.2026-02-08',
    ]);
    assert.deepEqual(range.body.skipped.map((x) => `${x.jobId} ${x.reason}`), [
      'day.BIA.1.2026-02-09 running',
      'day.BIA.1.2026-02-10 already queued',
      'day.BIA.2.2026-02-08 delayed (waiting for a retry)',
      'day.BIA.2.2026-02-09 already queued',
      'day.BIA.2.2026-02-10 already queued',
    ]);
    // The page now shows them queued, and nothing left to enqueue.
    const { cells, buttons } = parsePage((await request('GET', `/coverage${RANGE}`)).body);
    for (const key of ['BMC|1|2026-02-10', 'BMC|2|2026-02-08', 'BIA|1|2026-02-08', 'BIA|2|2026-02-10']) {
      assert.equal(cells.get(key).state, 'queued', key);
    }
    assert.deepEqual([...buttons.values()], [0, 0, 0, 0]);
    // A range reaching past today enqueues nothing past today.
    const future = await request('POST', '/coverage/enqueue', { json: { start: '2099-01-01', end: '2099-01-03' } });
    assert.deepEqual(future.body, { jobIds: [], count: 0, skipped: [] });
  });

  it('shows the last 14 days by default and a clear 400 page for a bad range', async (t) => {
    const { request } = await harness(t);
    const res = await request('GET', '/coverage');
    assert.equal(res.status, 200);
    const { cells } = parsePage(res.body);
    const today = new Date().toISOString().slice(0, 10);
    const days = [...new Set([...cells.keys()].map((k) => k.split('|')[2]))];
    assert.equal(days.length, 14);
    // The test may straddle midnight UTC: the last day is today as the server saw it.
    assert.ok(days[13] === today || days[13] === new Date(Date.now() - 86400000).toISOString().slice(0, 10), days[13]);
    assert.equal(cells.size, 14 * BRANCHES.length * 2);
    assert.ok([...cells.values()].every((c) => c.state === 'missing'));

    const bad = await request('GET', '/coverage?start=2026-02-30&end=2026-03-01');
    assert.equal(bad.status, 400);
    assert.match(bad.body, /start &quot;2026-02-30&quot; is not a real YYYY-MM-DD date/);
    const hostile = await request('GET', `/coverage?start=${encodeURIComponent('"><script>x()</script>')}&end=2026-01-01`);
    assert.equal(hostile.status, 400);
    assert.ok(!hostile.body.includes('<script>x()'), hostile.body);
    const wide = await request('GET', '/coverage?start=2024-01-01&end=2026-01-01');
    assert.equal(wide.status, 400);
    assert.match(wide.body, /at most 366/);
  });

  it('reads each collection once (imports per 5,000 days) for a year of 28 branches, and sends it gzipped', async (t) => {
    const h = await s.setup(t, redis);
    const db = mongo.client.db(mongo.server.uniqueDbName('coverage'));
    t.after(() => db.dropDatabase().catch(() => {}));
    await seedMongo(db);
    // Counts the queries the page sends, per collection.
    const finds = {};
    const counting = {
      collection(name) {
        return new Proxy(db.collection(name), {
          get(target, prop) {
            if (prop === 'find') {
              return (...args) => {
                finds[name] = (finds[name] || 0) + 1;
                return target.find(...args);
              };
            }
            const value = target[prop];
            return typeof value === 'function' ? value.bind(target) : value;
          },
        });
      },
      command: (...args) => db.command(...args),
    };
    const branches = [...new Set(['BMC', 'BIA', ...LEGACY_BRANCHES])];
    const app = createApp({ queue: h.queue, mongoDb: counting, branches, boardAuth: AUTH, log: silent, apiToken: null });
    const request = await serve(t, app);
    const res = await request('GET', '/coverage?start=2026-01-01&end=2026-12-31&refresh=0', { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-encoding'), 'gzip');
    const { cells } = parsePage(res.body);
    assert.equal(cells.size, branches.length * 2 * 365);
    assert.equal(cells.get('BMC|1|2026-02-08').state, 'done');
    assert.equal(cells.get('BIA|2|2026-02-10').monitor, true);
    // 20,440 days: imports in ceil(20,440 / 5,000) = 5 chunks; the others once.
    assert.deepEqual(finds, { imports: 5, filerecords: 1, monitorentries: 1 });
  });

  it('is behind the board\'s basic auth, refuses cross-site and form posts, and is off without credentials', async (t) => {
    const { h, request } = await harness(t);
    assert.equal((await request('GET', `/coverage${RANGE}`, { auth: null })).status, 401);
    assert.equal((await request('GET', `/coverage${RANGE}`, { auth: 'Basic eDp5' })).status, 401);
    assert.equal((await request('POST', '/coverage/enqueue', { auth: null, json: { start: '2026-02-08', end: '2026-02-10' } })).status, 401);
    const cross = await request('POST', '/coverage/enqueue', {
      json: { start: '2026-02-08', end: '2026-02-10' }, headers: { origin: 'http://evil.example' },
    });
    assert.equal(cross.status, 403);
    const asForm = await request('POST', '/coverage/enqueue', {
      json: { start: '2026-02-08', end: '2026-02-10' }, headers: { 'content-type': 'text/plain' },
    });
    assert.equal(asForm.status, 400);
    const badRow = await request('POST', '/coverage/enqueue', { json: { start: '2026-02-08', end: '2026-02-10', branch: 'NOPE', pos: 1 } });
    assert.equal(badRow.status, 400);
    assert.match(badRow.body.error, /not one of the page's branches/);
    assert.deepEqual(await h.counts(), { wait: 0, paused: 0, active: 0, prioritized: 0, delayed: 0, completed: 0, failed: 0 }, 'nothing enqueued');

    const { request: off } = await harness(t, { boardAuth: null });
    const res = await off('GET', `/coverage${RANGE}`, { auth: null });
    assert.equal(res.status, 404);
    assert.match(res.body.error, /BOARD_USER and BOARD_PASSWORD/);
  });
});
