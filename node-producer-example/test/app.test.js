'use strict';
// The Express app (src/app.js, src/server.js) against a real redis-server and a MongoDB-wire
// server (nx-27017, or MONGO_URI): what POST /missing writes to Redis, what GET /missing
// computes from `transactions`, GET /jobs/:id through a job's life with the worker under test,
// Bull Board behind basic auth, /health, and the server's start-up and SIGTERM.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { MongoClient } = require('mongodb');
const s = require('./support');
const { version } = require('../src/bullmq');
const { createQueue } = require('../src/queue');
const { createApp } = require('../src/app');
const { silent } = require('../src/log');
const { config: serverConfigOf } = require('../src/server');
const { LEGACY_BRANCHES } = require('../src/branches');

const redis = s.useRedis();
const mongo = s.useMongo();

const BOARD_AUTH = Object.freeze({ user: 'admin', password: 'pa:ss word' });
/** The API token of every app these tests build. */
const TOKEN = 'test-token-0123456789abcdef';
const midnight = (day) => new Date(`${day}T00:00:00Z`);
const basic = (user, password) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** Listens on a free loopback port; closed (bounded) after the test. */
async function serve(t, app) {
  const base = await s.listenApp(t, app);
  return {
    base,
    /** fetch relative to the app; resolves to {status, headers, body (JSON when JSON, else text)}. */
    async request(method, url, { json, body, headers = {}, token = TOKEN } = {}) {
      const init = { method, headers: { ...headers } };
      // The API's bearer token, unless the test sends its own Authorization (the board's).
      if (token && !init.headers.authorization && !url.startsWith('/admin')) init.headers.authorization = `Bearer ${token}`;
      if (json !== undefined) {
        init.body = JSON.stringify(json);
        init.headers['content-type'] = 'application/json';
      } else if (body !== undefined) {
        init.body = body;
      }
      const res = await fetch(base + url, { ...init, signal: AbortSignal.timeout(20000) });
      const text = await res.text();
      const isJson = (res.headers.get('content-type') || '').includes('application/json');
      return { status: res.status, headers: res.headers, body: isJson ? JSON.parse(text) : text };
    },
  };
}

/** A harness (unique queue) plus the app on it, listening, with its own database. */
async function appHarness(t, options = {}) {
  const {
    branches = ['BMC', 'BIA', 'AYALA-FRN'], boardAuth = null, queue, postRate, boardThrottle,
  } = options;
  // `apiToken: undefined` given explicitly means "not configured".
  const apiToken = 'apiToken' in options ? options.apiToken : TOKEN;
  const h = await s.setup(t, redis);
  const dbName = mongo.server.uniqueDbName();
  const mongoDb = mongo.client.db(dbName);
  t.after(() => mongoDb.dropDatabase().catch(() => {}));
  const app = createApp({
    queue: queue || h.queue, mongoDb, branches, boardAuth, log: silent, apiToken, postRate, boardThrottle,
  });
  const http = await serve(t, app);
  return { h, mongoDb, dbName, http };
}

/** Every job hash of the queue, by id: {name, data, opts} parsed. */
async function jobHashes(h, ids) {
  const out = {};
  for (const id of ids) {
    const hash = await h.db.hgetall(h.key(id));
    out[id] = { name: hash.name, data: JSON.parse(hash.data), opts: JSON.parse(hash.opts) };
  }
  return out;
}

describe(`app (worker=${s.WORKER}, bullmq ${version}, mongo=${process.env.MONGO_URI ? 'MONGO_URI' : 'nx-27017'})`, () => {
  // -------------------------------------------------------------------------------------------
  // POST /missing

  it('POST /missing enqueues one fetch-job per (branch, pos, date) with attempts 3 and exponential backoff', async (t) => {
    const { h, http } = await appHarness(t);
    const body = {
      branches_missing: {
        BMC: { 1: ['2026-02-09', '2026-02-10'], 2: ['2026-02-10'] },
        'AYALA-FRN': { 2: ['2024-02-29', '2024-02-29'] }, // listed twice: one job
        BIA: { 1: [] },
      },
      files: ['ignored by this route'],
    };
    const res = await http.request('POST', '/missing', { json: body });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.count, 4);
    assert.equal(res.body.jobIds.length, 4);
    assert.equal(new Set(res.body.jobIds).size, 4, 'distinct ids');

    const hashes = await jobHashes(h, res.body.jobIds);
    assert.deepEqual(res.body.jobIds.map((id) => hashes[id].data), [
      { branch: 'BMC', pos: 1, date: '2026-02-09' },
      { branch: 'BMC', pos: 1, date: '2026-02-10' },
      { branch: 'BMC', pos: 2, date: '2026-02-10' },
      { branch: 'AYALA-FRN', pos: 2, date: '2024-02-29' },
    ]);
    for (const id of res.body.jobIds) {
      assert.equal(hashes[id].name, 'fetch-job');
      assert.equal(typeof hashes[id].data.pos, 'number', 'pos is a Number in the job data');
      assert.equal(hashes[id].opts.attempts, 3);
      assert.deepEqual(hashes[id].opts.backoff, { type: 'exponential', delay: 1000 });
      // Retention (issue 11): BullMQ stores removeOnComplete/removeOnFail as `kl`-style opts.
      const opts = hashes[id].opts;
      assert.deepEqual(opts.removeOnComplete ?? opts.roc, { age: 604800, count: 10000 }, JSON.stringify(opts));
      assert.deepEqual(opts.removeOnFail ?? opts.rof, { age: 2592000 }, JSON.stringify(opts));
    }
    assert.deepEqual(res.body.jobIds, [
      'day.BMC.1.2026-02-09', 'day.BMC.1.2026-02-10', 'day.BMC.2.2026-02-10', 'day.AYALA-FRN.2.2024-02-29',
    ]);
    assert.deepEqual(res.body.skipped, []);
    assert.deepEqual((await h.db.lrange(h.key('wait'), 0, -1)).sort(), res.body.jobIds.slice().sort(), 'all waiting');
    assert.deepEqual(await h.counts(), { wait: 4, paused: 0, active: 0, prioritized: 0, delayed: 0, completed: 0, failed: 0 });
  });

  it('POST /missing answers 400 with a clear message on bad bodies and enqueues nothing', async (t) => {
    const { h, http } = await appHarness(t);
    const bm = (x) => ({ branches_missing: x });
    const cases = [
      ['no body', { body: undefined }, /application\/json/],
      ['text/plain', { body: 'branches_missing', headers: { 'content-type': 'text/plain' } }, /application\/json/],
      ['invalid JSON', { body: '{"branches_missing": {', headers: { 'content-type': 'application/json' } }, /not valid JSON/],
      ['an array', { json: [] }, /must be a JSON object/],
      ['no branches_missing', { json: { missing: {} } }, /branches_missing is required/],
      ['branches_missing an array', { json: bm([]) }, /branches_missing must be an object/],
      ['branches_missing a string', { json: bm('BMC') }, /branches_missing must be an object/],
      ['branch with a space', { json: bm({ 'B MC': { 1: ['2026-02-09'] } }) }, /branch code "B MC"/],
      ['branch with a colon', { json: bm({ 'BMC:1': { 1: ['2026-02-09'] } }) }, /branch code "BMC:1"/],
      ['branch with a slash', { json: bm({ '../x': { 1: ['2026-02-09'] } }) }, /branch code/],
      ['empty branch', { json: bm({ '': { 1: ['2026-02-09'] } }) }, /branch code ""/],
      ['positions an array', { json: bm({ BMC: [['2026-02-09']] }) }, /BMC must be an object/],
      ['pos 3', { json: bm({ BMC: { 3: ['2026-02-09'] } }) }, /POS must be "1" or "2", got "3"/],
      ['pos 01', { json: bm({ BMC: { '01': ['2026-02-09'] } }) }, /POS must be "1" or "2", got "01"/],
      ['dates a string', { json: bm({ BMC: { 1: '2026-02-09' } }) }, /must be an array of YYYY-MM-DD dates/],
      ['Feb 30', { json: bm({ BMC: { 1: ['2026-02-30'] } }) }, /"2026-02-30" is not a real YYYY-MM-DD date/],
      ['Feb 29 of a common year', { json: bm({ BMC: { 2: ['2025-02-29'] } }) }, /"2025-02-29" is not a real/],
      ['slashes', { json: bm({ BMC: { 1: ['2026/02/09'] } }) }, /"2026\/02\/09" is not a real/],
      ['with a time', { json: bm({ BMC: { 1: ['2026-02-09T00:00:00Z'] } }) }, /is not a real/],
      ['a number', { json: bm({ BMC: { 1: [20260209] } }) }, /20260209 is not a real/],
      ['month 13', { json: bm({ BMC: { 1: ['2026-13-01'] } }) }, /is not a real/],
      // One bad date after good ones: nothing at all is enqueued.
      ['good then bad', { json: bm({ BMC: { 1: ['2026-02-09'] }, BIA: { 1: ['2026-02-09', 'yesterday'] } }) }, /"yesterday" is not a real/],
    ];
    for (const [label, req, pattern] of cases) {
      const res = await http.request('POST', '/missing', req);
      assert.equal(res.status, 400, `${label}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.error, pattern, label);
    }

    // More than 366 distinct days (issue 11: 10,000 were accepted), and days outside
    // 2000-01-01..today (0000-01-01 was accepted).
    const start = Date.UTC(2001, 0, 1);
    const days = Array.from({ length: 367 }, (_, i) => new Date(start + i * 86400000).toISOString().slice(0, 10));
    const big = await http.request('POST', '/missing', { json: bm({ BMC: { 1: days.slice(0, 200) }, BIA: { 2: days.slice(200) } }) });
    assert.equal(big.status, 400);
    assert.match(big.body.error, /too many days: at most 366 distinct dates per request/);
    const farFuture = new Date(Date.now() + 3 * 86400000).toISOString().slice(0, 10);
    for (const day of ['0000-01-01', '1999-12-31', farFuture]) {
      const res = await http.request('POST', '/missing', { json: bm({ BMC: { 1: [day] } }) });
      assert.equal(res.status, 400, day);
      assert.match(res.body.error, new RegExp(`${day} is outside 2000-01-01\\.\\.`), day);
    }

    assert.equal(await h.db.exists(h.key('id')), 0, 'no job id was ever taken');
    assert.equal(await h.db.llen(h.key('wait')), 0);

    // Exactly 366 days, on both POS of three branches, is allowed.
    const year = days.slice(0, 366);
    const max = await http.request('POST', '/missing', { json: bm({ BMC: { 1: year, 2: year }, BIA: { 1: year }, 'AYALA-FRN': { 2: year } }) });
    assert.equal(max.status, 202, JSON.stringify(max.body).slice(0, 200));
    assert.equal(max.body.count, 4 * 366);
    assert.equal(await h.db.llen(h.key('wait')), 4 * 366);

    // Nothing to do is not an error: the empty GET /missing answer can be POSTed as it is.
    const empty = await http.request('POST', '/missing', { json: bm({}) });
    assert.equal(empty.status, 202);
    assert.deepEqual(empty.body, { jobIds: [], count: 0, skipped: [] });
  });

  // -------------------------------------------------------------------------------------------
  // GET /missing

  it('GET /missing answers every branch × POS × day less the days whose import is done', async (t) => {
    const { h, http, mongoDb } = await appHarness(t, { branches: ['BMC', 'BIA', 'AYALA-FRN'] });
    const days = ['2026-02-27', '2026-02-28', '2026-03-01', '2026-03-02'];
    const done = (branch, pos, day) => ({ _id: `${branch}|${pos}|${day}`, state: 'done', fence: 1, untilMs: 0 });
    const records = [
      // BMC: POS 1 has 02-27 and 03-01 done; POS 2 has 02-28.
      done('BMC', 1, '2026-02-27'), done('BMC', 1, '2026-03-01'), done('BMC', 2, '2026-02-28'),
      // BIA: POS 2 complete, POS 1 nothing in range (the day before and the day after).
      ...days.map((d) => done('BIA', 2, d)),
      done('BIA', 1, '2026-02-26'), done('BIA', 1, '2026-03-03'),
      // AYALA-FRN: complete on both POS → left out of the answer.
      ...days.flatMap((d) => [done('AYALA-FRN', 1, d), done('AYALA-FRN', 2, d)]),
      // Not counted: a branch outside the list, POS 3.
      done('OTHER', 1, '2026-02-27'), done('BMC', 3, '2026-02-28'),
      // Half imported: a crashed import left its record running (lease run out, or still live).
      { _id: 'BMC|2|2026-03-01', state: 'running', fence: 2, untilMs: 0 },
      { _id: 'BMC|1|2026-02-28', state: 'running', fence: 1, untilMs: Date.now() + 600000 },
    ];
    await mongoDb.collection('imports').insertMany(records);
    // Rows alone do not make a day present (the crashed imports above left some).
    const tx = (branch, pos, day) => ({ branch, pos, date: midnight(day), productName: 'x' });
    await mongoDb.collection('transactions').insertMany([
      tx('BMC', 2, '2026-03-01'), tx('BMC', 1, '2026-02-28'), tx('BMC', 2, '2026-03-02'),
    ]);

    const res = await http.request('GET', '/missing?start=2026-02-27&end=2026-03-02');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, {
      branches_missing: {
        BMC: { 1: ['2026-02-28', '2026-03-02'], 2: ['2026-02-27', '2026-03-01', '2026-03-02'] },
        BIA: { 1: days },
      },
    });
    assert.deepEqual(Object.keys(res.body.branches_missing), ['BMC', 'BIA'], 'branches in list order');

    // One day; and a range with no transactions at all.
    const one = await http.request('GET', '/missing?start=2026-02-27&end=2026-02-27');
    assert.deepEqual(one.body, { branches_missing: { BMC: { 2: ['2026-02-27'] }, BIA: { 1: ['2026-02-27'] } } });
    const none = await http.request('GET', '/missing?start=2030-01-01&end=2030-01-02');
    const both = ['2030-01-01', '2030-01-02'];
    assert.deepEqual(none.body, {
      branches_missing: { BMC: { 1: both, 2: both }, BIA: { 1: both, 2: both }, 'AYALA-FRN': { 1: both, 2: both } },
    });

    // The answer is a POST /missing body.
    const post = await http.request('POST', '/missing', { json: res.body });
    assert.equal(post.status, 202);
    assert.equal(post.body.count, 9);
    const data = Object.values(await jobHashes(h, post.body.jobIds)).map((j) => j.data);
    assert.deepEqual(data.find((d) => d.branch === 'BIA' && d.date === '2026-03-01'), { branch: 'BIA', pos: 1, date: '2026-03-01' });
  });

  it('GET /missing validates start and end', async (t) => {
    const { http } = await appHarness(t, { branches: ['BMC'] });
    const cases = [
      ['', /start and end are required/],
      ['?start=2026-02-01', /start and end are required/],
      ['?end=2026-02-01', /start and end are required/],
      ['?start=2026-02-30&end=2026-03-01', /start "2026-02-30" is not a real YYYY-MM-DD date/],
      ['?start=2026-02-01&end=tomorrow', /end "tomorrow" is not a real/],
      ['?start=2026-03-02&end=2026-03-01', /end 2026-03-01 is before start 2026-03-02/],
      ['?start=2025-01-01&end=2026-01-02', /has 367 days; at most 366/],
      ['?start=2026-01-01&start=2026-01-02&end=2026-01-03', /once each/],
    ];
    for (const [query, pattern] of cases) {
      const res = await http.request('GET', `/missing${query}`);
      assert.equal(res.status, 400, `${query}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.error, pattern, query);
    }
    // 366 days (a leap year) is the widest range.
    const year = await http.request('GET', '/missing?start=2024-01-01&end=2024-12-31');
    assert.equal(year.status, 200);
    assert.equal(year.body.branches_missing.BMC['1'].length, 366);
    assert.equal(year.body.branches_missing.BMC['2'][59], '2024-02-29');
  });

  // -------------------------------------------------------------------------------------------
  // GET /jobs/:id

  it('GET /jobs/:id shows a waiting job, then the same job completed by the worker', async (t) => {
    const { h, http } = await appHarness(t);
    const posted = await http.request('POST', '/missing', { json: { branches_missing: { BMC: { 2: ['2026-02-09'] } } } });
    const [id] = posted.body.jobIds;

    const waiting = await http.request('GET', `/jobs/${id}`);
    assert.equal(waiting.status, 200);
    assert.equal(waiting.body.id, id);
    assert.equal(waiting.body.name, 'fetch-job');
    assert.deepEqual(waiting.body.data, { branch: 'BMC', pos: 2, date: '2026-02-09' });
    assert.equal(waiting.body.state, 'waiting');
    assert.equal(waiting.body.progress, 0);
    assert.equal(waiting.body.attemptsMade, 0);
    assert.equal(waiting.body.attempts, 3);
    assert.ok(Math.abs(waiting.body.timestamp - Date.now()) < 60000, 'timestamp is the enqueue time');
    assert.equal(waiting.body.processedOn, null);
    assert.equal(waiting.body.finishedOn, null);
    assert.equal('returnvalue' in waiting.body, false);
    assert.equal('failedReason' in waiting.body, false);

    const worker = h.startWorker({ processor: 'noop' });
    await h.waitForCounts({ completed: 1 });
    const done = await http.request('GET', `/jobs/${id}`);
    assert.equal(done.status, 200);
    assert.equal(done.body.state, 'completed');
    assert.equal(done.body.attemptsMade, 1);
    assert.deepEqual(done.body.returnvalue, { processed: true, echo: { branch: 'BMC', pos: 2, date: '2026-02-09' } });
    assert.equal(done.body.processedBy, worker.name);
    assert.ok(done.body.processedOn >= done.body.timestamp);
    assert.ok(done.body.finishedOn >= done.body.processedOn);
  });

  it('GET /jobs/:id shows a failed job with its reason; unknown ids are 404, malformed ones 400', async (t) => {
    const { h, http } = await appHarness(t);
    h.startWorker({ processor: 'fail' });
    const job = await h.queue.add('fetch-job', { message: 'POS server answered HTML', fatal: true });
    await h.waitForCounts({ failed: 1 });
    const failed = await http.request('GET', `/jobs/${job.id}`);
    assert.equal(failed.status, 200);
    assert.equal(failed.body.state, 'failed');
    assert.equal(failed.body.failedReason, 'POS server answered HTML');
    assert.equal(failed.body.attemptsMade, 1, 'non-retryable: one attempt');
    assert.equal('returnvalue' in failed.body, false);
    assert.ok(failed.body.finishedOn >= failed.body.processedOn);

    // Unknown ids, and ids naming the queue's own keys (meta hash, wait list, id counter, events stream).
    for (const id of ['987654', 'no-such-job', 'meta', 'wait', 'id', 'events', 'completed']) {
      const res = await http.request('GET', `/jobs/${id}`);
      assert.equal(res.status, 404, `${id}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.error, new RegExp(`no job with id ${id}`));
    }
    for (const id of [`${job.id}:lock`, 'a%20b', 'x'.repeat(201)]) {
      const res = await http.request('GET', `/jobs/${id}`);
      assert.equal(res.status, 400, `${id}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.error, /is not 1-200 letters/);
    }
  });

  // -------------------------------------------------------------------------------------------
  // Bull Board

  it('Bull Board at /admin/queues needs basic auth; its API lists queue fetch with counts', async (t) => {
    // This test's own queue is the real `fetch` on db 2 of the file's redis-server.
    const queue = createQueue({ redisUrl: redis.server.url(2), queueName: 'fetch', prefix: s.PREFIX });
    queue.on('error', () => {});
    t.after(() => s.withTimeout(queue.close(), 5000, 'Queue.close'));
    const { http } = await appHarness(t, { boardAuth: BOARD_AUTH, queue });
    await queue.addBulk([
      { name: 'fetch-job', data: { branch: 'BMC', pos: 1, date: '2026-02-09' } },
      { name: 'fetch-job', data: { branch: 'BMC', pos: 2, date: '2026-02-09' } },
    ]);
    await queue.add('fetch-job', { branch: 'BIA', pos: 1, date: '2026-02-09' }, { delay: 600000 });

    const anonymous = await http.request('GET', '/admin/queues');
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate'), /^Basic realm="Bull Board"/);
    for (const authorization of [
      basic('admin', 'wrong'), basic('root', BOARD_AUTH.password), basic('', ''), 'Bearer abc', 'Basic !!!', basic('admin', ''),
    ]) {
      const res = await http.request('GET', '/admin/queues', { headers: { authorization } });
      assert.equal(res.status, 401, authorization);
    }
    const apiAnonymous = await http.request('GET', '/admin/queues/api/queues');
    assert.equal(apiAnonymous.status, 401, 'the API is behind the same auth');

    const auth = { authorization: basic(BOARD_AUTH.user, BOARD_AUTH.password) };
    const page = await http.request('GET', '/admin/queues', { headers: auth });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type'), /text\/html/);
    assert.match(page.body, /<html/i);

    const api = await http.request('GET', '/admin/queues/api/queues', { headers: auth });
    assert.equal(api.status, 200, typeof api.body === 'string' ? api.body.slice(0, 300) : JSON.stringify(api.body));
    const fetchQueue = api.body.queues.find((q) => q.name === 'fetch');
    assert.ok(fetchQueue, `queue fetch listed: ${JSON.stringify(api.body.queues.map((q) => q.name))}`);
    assert.equal(fetchQueue.counts.waiting, 2);
    assert.equal(fetchQueue.counts.delayed, 1);
    assert.equal(fetchQueue.counts.completed, 0);
    assert.equal(fetchQueue.type, 'bullmq');
  });

  it('without credentials the board is not mounted at all', async (t) => {
    const { http } = await appHarness(t, { boardAuth: null });
    for (const url of ['/admin/queues', '/admin/queues/api/queues']) {
      const res = await http.request('GET', url, { headers: { authorization: basic('admin', 'x') } });
      assert.equal(res.status, 404, url);
      assert.match(res.body.error, /Bull Board is disabled: set BOARD_USER and BOARD_PASSWORD/);
    }
    assert.throws(() => createApp({ queue: {}, mongoDb: {}, branches: ['BMC'], boardAuth: { user: 'admin', password: '' } }), /non-empty user and password/);
  });

  // -------------------------------------------------------------------------------------------
  // /health

  it('GET /health is 200 while Redis and MongoDB answer, 503 once Redis is stopped', async (t) => {
    const own = await s.RedisServer.start();
    t.after(() => own.destroy());
    const queue = createQueue({ redisUrl: own.url(1), queueName: 'fetch', prefix: s.PREFIX });
    queue.on('error', () => {});
    t.after(() => s.withTimeout(queue.close(), 3000, 'Queue.close').catch(() => queue.disconnect()));
    const app = createApp({ queue, mongoDb: mongo.client.db(mongo.server.uniqueDbName()), branches: ['BMC'], log: silent, healthTimeoutMs: 1500, apiToken: TOKEN });
    const http = await serve(t, app);

    const up = await http.request('GET', '/health');
    assert.equal(up.status, 200, JSON.stringify(up.body));
    assert.deepEqual(up.body, { status: 'ok', redis: 'ok', mongo: 'ok' });

    await own.stop();
    const started = Date.now();
    const down = await http.request('GET', '/health');
    assert.equal(down.status, 503, JSON.stringify(down.body));
    assert.equal(down.body.status, 'unavailable');
    assert.match(down.body.redis, /^error: /);
    assert.equal(down.body.mongo, 'ok');
    assert.ok(Date.now() - started < 5000, 'answers within the health timeout');

    // Routes that need Redis answer 503 too, at once.
    const post = await http.request('POST', '/missing', { json: { branches_missing: { BMC: { 1: ['2026-02-09'] } } } });
    assert.equal(post.status, 503);
    assert.match(post.body.error, /Redis unavailable/);
    const job = await http.request('GET', '/jobs/1');
    assert.equal(job.status, 503);
  });

  it('GET /health is 503 when MongoDB does not answer', async (t) => {
    const h = await s.setup(t, redis);
    const deadPort = await s.freePort();
    const dead = new MongoClient(`mongodb://127.0.0.1:${deadPort}/biggs`, { serverSelectionTimeoutMS: 300 });
    t.after(() => dead.close());
    const app = createApp({ queue: h.queue, mongoDb: dead.db(), branches: ['BMC'], log: silent, apiToken: TOKEN });
    const http = await serve(t, app);
    const res = await http.request('GET', '/health');
    assert.equal(res.status, 503);
    assert.equal(res.body.redis, 'ok');
    assert.match(res.body.mongo, /^error: /);
    const missing = await http.request('GET', '/missing?start=2026-02-09&end=2026-02-09');
    assert.equal(missing.status, 503);
    assert.match(missing.body.error, /MongoDB unavailable/);
  });

  // -------------------------------------------------------------------------------------------
  // Issue 11: a producer that faces a network

  it('r11: /missing and /jobs need the bearer token; /health does not; an app without a token is locked', async (t) => {
    const { http } = await appHarness(t);
    const body = { json: { branches_missing: { BMC: { 1: ['2026-02-09'] } } } };
    for (const [method, url, extra] of [['POST', '/missing', body], ['GET', '/missing?start=2026-02-09&end=2026-02-09', {}], ['GET', '/jobs/1', {}]]) {
      for (const token of [null, 'wrong-token-0123456789']) {
        const res = await http.request(method, url, { ...extra, token });
        assert.equal(res.status, 401, `${method} ${url} with ${token}`);
        assert.match(res.body.error, /Authorization: Bearer/);
      }
    }
    assert.equal((await http.request('GET', '/health', { token: null })).status, 200);
    assert.equal((await http.request('POST', '/missing', body)).status, 202);

    const locked = await appHarness(t, { apiToken: undefined });
    const res = await locked.http.request('POST', '/missing', body);
    assert.equal(res.status, 401);
    assert.match(res.body.error, /no API_TOKEN configured/);
    assert.equal(await locked.h.db.llen(locked.h.key('wait')), 0);
    const open = await appHarness(t, { apiToken: null });
    assert.equal((await open.http.request('POST', '/missing', { ...body, token: null })).status, 202, 'explicitly disabled');
  });

  it('r11: POST /missing is rate limited per client with Retry-After', async (t) => {
    const { http } = await appHarness(t, { postRate: { max: 2, windowMs: 60000 } });
    const body = { json: { branches_missing: {} } };
    assert.equal((await http.request('POST', '/missing', body)).status, 202);
    assert.equal((await http.request('POST', '/missing', body)).status, 202);
    const third = await http.request('POST', '/missing', body);
    assert.equal(third.status, 429);
    assert.match(third.body.error, /too many requests: at most 2 per 60 s/);
    assert.ok(Number(third.headers.get('retry-after')) > 0);
  });

  // -------------------------------------------------------------------------------------------
  // Issue 16: reprocessing days from raw storage

  it('r16: POST /reprocess enqueues one fetch-job {branch, pos, date, reprocess: true} per day, with the /missing validation, token and rate limit', async (t) => {
    // Six requests pass the limiter below (2 enqueued, 4 refused); the seventh is throttled.
    const { h, http } = await appHarness(t, { postRate: { max: 6, windowMs: 60000 } });
    const body = { branches_missing: { BMC: { 1: ['2026-02-09', '2026-02-09'], 2: ['2026-02-10'] } } };
    const before = Date.now();
    const res = await http.request('POST', '/reprocess', { json: body });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.count, 2);
    const hashes = await jobHashes(h, res.body.jobIds);
    assert.deepEqual(res.body.jobIds.map((id) => hashes[id].data), [
      { branch: 'BMC', pos: 1, date: '2026-02-09', reprocess: true },
      { branch: 'BMC', pos: 2, date: '2026-02-10', reprocess: true },
    ]);
    for (const id of res.body.jobIds) {
      const m = /^reprocess\.BMC\.[12]\.2026-02-(09|10)\.(\d+)$/.exec(id);
      assert.ok(m, id);
      assert.ok(Number(m[2]) >= before && Number(m[2]) <= Date.now(), id);
      assert.equal(hashes[id].name, 'fetch-job');
      assert.equal(hashes[id].opts.attempts, 3);
      assert.deepEqual(hashes[id].opts.backoff, { type: 'exponential', delay: 1000 });
    }
    // Not the day's fetch id: a finished fetch job of the day kept for retention does not
    // swallow the request, and a second request is a job of its own.
    await new Promise((resolve) => setTimeout(resolve, 2));
    const again = await http.request('POST', '/reprocess', { json: { branches_missing: { BMC: { 1: ['2026-02-09'] } } } });
    assert.equal(again.status, 202);
    assert.equal(again.body.count, 1);
    assert.ok(!res.body.jobIds.includes(again.body.jobIds[0]));
    assert.equal(await h.db.llen(h.key('wait')), 3);

    // The same validation as POST /missing, nothing enqueued.
    for (const [json, pattern] of [
      [{ missing: {} }, /branches_missing is required/],
      [{ branches_missing: { 'A/B': { 1: ['2026-02-09'] } } }, /branch code/],
      [{ branches_missing: { BMC: { 3: ['2026-02-09'] } } }, /POS must be "1" or "2"/],
      [{ branches_missing: { BMC: { 1: ['2026-02-30'] } } }, /not a real YYYY-MM-DD date/],
    ]) {
      const bad = await http.request('POST', '/reprocess', { json });
      assert.equal(bad.status, 400, JSON.stringify(json));
      assert.match(bad.body.error, pattern);
    }
    assert.equal(await h.db.llen(h.key('wait')), 3);
    // The token, and the rate limit it shares with POST /missing.
    for (const token of [null, 'wrong-token-0123456789']) {
      const denied = await http.request('POST', '/reprocess', { json: body, token });
      assert.equal(denied.status, 401);
    }
    const limited = await http.request('POST', '/reprocess', { json: body });
    assert.equal(limited.status, 429);
    assert.equal(await h.db.llen(h.key('wait')), 3);
  });

  it('r11: a day queued, delayed or running is not enqueued twice, and the answer says why; a finished day is fetched again', async (t) => {
    const { h, http } = await appHarness(t);
    const bm = (x) => ({ json: { branches_missing: x } });
    const first = await http.request('POST', '/missing', bm({ BMC: { 1: ['2026-02-09', '2026-02-10'] } }));
    assert.deepEqual(first.body.jobIds, ['day.BMC.1.2026-02-09', 'day.BMC.1.2026-02-10']);
    // One of them delayed (as a retry is), the other waiting.
    const delayed = await h.queue.getJob('day.BMC.1.2026-02-10');
    await delayed.changeDelay(600000).catch(async () => {
      await h.db.lrem(h.key('wait'), 0, delayed.id);
      await h.db.zadd(h.key('delayed'), (Date.now() + 600000) * 4096, delayed.id);
    });
    const again = await http.request('POST', '/missing', bm({ BMC: { 1: ['2026-02-09', '2026-02-10', '2026-02-11'] } }));
    assert.equal(again.status, 202, JSON.stringify(again.body));
    assert.deepEqual(again.body.jobIds, ['day.BMC.1.2026-02-11']);
    assert.deepEqual(again.body.skipped.map((x) => [x.jobId, x.reason]), [
      ['day.BMC.1.2026-02-09', 'already queued'],
      ['day.BMC.1.2026-02-10', 'delayed (waiting for a retry)'],
    ]);
    assert.deepEqual(again.body.skipped[0], { branch: 'BMC', pos: 1, date: '2026-02-09', jobId: 'day.BMC.1.2026-02-09', reason: 'already queued' });

    // Running: the sleep processor holds the job.
    const running = await http.request('POST', '/missing', bm({ BIA: { 2: ['2026-02-09'] } }));
    const [id] = running.body.jobIds;
    await h.db.hset(h.key(id), 'data', JSON.stringify({ ms: 60000, branch: 'BIA', pos: 2, date: '2026-02-09' }));
    await h.queue.remove('day.BMC.1.2026-02-09');
    await h.queue.remove('day.BMC.1.2026-02-11');
    await h.queue.remove('day.BMC.1.2026-02-10');
    h.startWorker({ processor: 'sleep' });
    await s.waitUntil(async () => (await h.queue.getJobState(id)) === 'active', { timeout: 20000, message: 'job active' });
    const busy = await http.request('POST', '/missing', bm({ BIA: { 2: ['2026-02-09'] } }));
    assert.deepEqual(busy.body.jobIds, []);
    assert.deepEqual(busy.body.skipped.map((x) => x.reason), ['running']);
  });

  it('r11: a day whose job finished is enqueued again under the same id', async (t) => {
    const { h, http } = await appHarness(t);
    const bm = { json: { branches_missing: { BMC: { 2: ['2026-02-09'] } } } };
    const first = await http.request('POST', '/missing', bm);
    h.startWorker({ processor: 'noop' });
    await h.waitForCounts({ completed: 1 });
    const again = await http.request('POST', '/missing', bm);
    assert.deepEqual(again.body.jobIds, first.body.jobIds);
    assert.deepEqual(again.body.skipped, []);
    await h.waitForCounts({ completed: 1, wait: 0 });
    const job = await h.queue.getJob(first.body.jobIds[0]);
    assert.equal(await job.getState(), 'completed');
  });

  it('r11: Bull Board throttles failed logins, and refuses a default or short password in production', async (t) => {
    const { http } = await appHarness(t, { boardAuth: BOARD_AUTH, boardThrottle: { maxFailures: 2, windowMs: 60000 } });
    const wrong = { headers: { authorization: basic('admin', 'guess') } };
    assert.equal((await http.request('GET', '/admin/queues', wrong)).status, 401);
    assert.equal((await http.request('GET', '/admin/queues', wrong)).status, 401);
    assert.equal((await http.request('GET', '/admin/queues', wrong)).status, 429);
    const right = await http.request('GET', '/admin/queues', { headers: { authorization: basic(BOARD_AUTH.user, BOARD_AUTH.password) } });
    assert.equal(right.status, 429, 'locked out for the window, even with the right password');

    const prod = (env) => serverConfigOf({ API_TOKEN: TOKEN, NODE_ENV: 'production', ...env });
    assert.throws(() => prod({ BOARD_USER: 'admin', BOARD_PASSWORD: 'admin' }), /default password/);
    assert.throws(() => prod({ BOARD_USER: 'ops', BOARD_PASSWORD: 'short-pw' }), /at least 12 characters/);
    assert.deepEqual(prod({ BOARD_USER: 'ops', BOARD_PASSWORD: 'a-long-random-passphrase' }).boardAuth.user, 'ops');
    assert.equal(serverConfigOf({ API_TOKEN: TOKEN, BOARD_USER: 'admin', BOARD_PASSWORD: 'admin' }).boardAuth.password, 'admin', 'allowed outside production');
    assert.throws(() => serverConfigOf({}), /API_TOKEN is required/);
    assert.throws(() => serverConfigOf({ API_TOKEN: 'short' }), /at least 16 characters/);
    assert.equal(serverConfigOf({ API_AUTH: 'off' }).apiToken, null);
    assert.throws(() => serverConfigOf({ API_AUTH: 'off', NODE_ENV: 'production' }), /refused with NODE_ENV=production/);
  });

  // -------------------------------------------------------------------------------------------
  // src/server.js

  it('src/server.js reads its environment, serves, and exits 0 on SIGTERM', async (t) => {
    const dbName = mongo.server.uniqueDbName('server');
    t.after(() => mongo.client.db(dbName).dropDatabase().catch(() => {}));
    await mongo.client.db(dbName).collection('imports').insertOne({ _id: 'XA|1|2026-02-09', state: 'done' });
    const app = await s.startApp(t, null, {
      REDIS_JOB_URL: redis.server.url(3),
      QUEUE_NAME: 'fetch',
      MONGO_URI: mongo.server.uriFor(dbName),
      BRANCHES: 'XA, XB',
      BOARD_USER: '',
      BOARD_PASSWORD: '',
      API_TOKEN: TOKEN,
    });
    const output = () => app.logs().join('\n');
    assert.match(output(), /Bull Board disabled: BOARD_USER and BOARD_PASSWORD are not set/);
    const base = app.url;
    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 200, await health.clone().text());
    assert.equal((await fetch(`${base}/missing?start=2026-02-09&end=2026-02-09`)).status, 401, 'the API needs the token');
    const missing = await (await fetch(`${base}/missing?start=2026-02-09&end=2026-02-09`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    assert.deepEqual(missing, { branches_missing: { XA: { 2: ['2026-02-09'] }, XB: { 1: ['2026-02-09'], 2: ['2026-02-09'] } } });
    assert.equal((await fetch(`${base}/admin/queues`)).status, 404, 'board disabled');

    const exit = await app.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, output());
    assert.match(output(), /SIGTERM: shutting down/);
    assert.match(output(), /stopped/);
  });

  it('server configuration: defaults, BRANCHES as a file or a list, board credentials in pairs', () => {
    const serverConfig = (env) => serverConfigOf({ API_TOKEN: TOKEN, ...env });
    const base = serverConfig({});
    assert.equal(base.port, 3000);
    assert.equal(base.mongoUri, 'mongodb://127.0.0.1:27017/biggs');
    assert.equal(base.boardAuth, null);
    assert.equal(base.branches.length, 28);
    assert.deepEqual(base.branches, LEGACY_BRANCHES);
    assert.deepEqual([base.branches[0], base.branches[27]], ['AYALA-FRN', 'ROXAS']);
    assert.equal(base.queue.queueName, 'fetch');
    assert.equal(base.queue.redisUrl, 'redis://127.0.0.1:6379/1');

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fetch-app-branches-'));
    try {
      const file = path.join(dir, 'branches.txt');
      fs.writeFileSync(file, '\uFEFFBMC\r\nBIA\n\n  B-SMS  \nBMC');
      assert.deepEqual(serverConfig({ BRANCHES: file }).branches, ['BMC', 'BIA', 'B-SMS']);
      fs.writeFileSync(file, 'BMC\nBAD CODE\n');
      assert.throws(() => serverConfig({ BRANCHES: file }), /branch code "BAD CODE"/);
      fs.writeFileSync(file, '\n\n');
      assert.throws(() => serverConfig({ BRANCHES: file }), /no branch codes/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    assert.deepEqual(serverConfig({ BRANCHES: 'BMC,BIA , ,SMNAG' }).branches, ['BMC', 'BIA', 'SMNAG']);
    assert.throws(() => serverConfig({ BRANCHES: 'BMC,B;MC' }), /branch code "B;MC"/);

    assert.deepEqual(serverConfig({ BOARD_USER: 'a', BOARD_PASSWORD: 'b' }).boardAuth, { user: 'a', password: 'b' });
    assert.throws(() => serverConfig({ BOARD_USER: 'a' }), /BOARD_USER is set but BOARD_PASSWORD is not/);
    assert.throws(() => serverConfig({ BOARD_PASSWORD: 'b' }), /BOARD_PASSWORD is set but BOARD_USER is not/);
    assert.throws(() => serverConfig({ PORT: 'http' }), /PORT must be a port number/);
    assert.equal(serverConfig({ PORT: '8080', MONGO_URI: 'mongodb://m/x' }).port, 8080);
  });
});
