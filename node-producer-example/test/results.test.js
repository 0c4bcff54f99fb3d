'use strict';
// Results as a Node producer sees them: return values, failures, the cache entry the worker
// writes, and the worker's visibility in `queue.getWorkers()` (Bull Board's worker count).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

describe(`results (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('a returned value reaches job.returnvalue, the completed event and waitUntilFinished', async (t) => {
    const h = await s.setup(t, redis);
    const worker = h.startWorker({ processor: 'noop' });
    const data = { branch: 'B01', pos: 3, date: '2024-05-01', nested: { list: [1, 'two', null, true] }, text: 'ü€\n"' };
    const expected = { processed: true, echo: data };

    const job = await h.queue.add('fetch-job', data);
    const returned = await s.withTimeout(job.waitUntilFinished(h.queueEvents), 15000, 'waitUntilFinished');
    assert.deepEqual(returned, expected);

    const completed = await h.waitForEvent((e) => e.event === 'completed' && e.jobId === job.id, { message: 'completed event' });
    assert.deepEqual(completed.returnvalue, expected, 'completed event carries the parsed return value');
    assert.equal(completed.prev, 'active');
    assert.deepEqual(h.events.namesFor(job.id).filter((n) => n !== 'drained'), ['added', 'waiting', 'active', 'completed']);

    const stored = await h.job(job.id);
    assert.deepEqual(stored.returnvalue, expected);
    assert.deepEqual(JSON.parse(await h.db.hget(h.key(job.id), 'returnvalue')), expected, 'returnvalue is stored as JSON text');
    assert.equal(stored.attemptsMade, 1);
    assert.equal(stored.attemptsStarted, 1);
    assert.equal(stored.processedBy, worker.name, 'pb holds the worker name');
    assert.ok(stored.processedOn >= stored.timestamp, 'processedOn >= timestamp');
    assert.ok(stored.finishedOn >= stored.processedOn, 'finishedOn >= processedOn');
    assert.equal(stored.failedReason, undefined);
    assert.equal(await stored.getState(), 'completed');

    assert.equal(await h.db.exists(h.key(`${job.id}:lock`)), 0, 'the lock is released');
    assert.equal(await h.db.sismember(h.key('stalled'), job.id), 0, 'not a stalled candidate');
    assert.equal(await h.db.llen(h.key('active')), 0);
    assert.ok((await h.db.zscore(h.key('completed'), job.id)) !== null, 'in the completed set');
  });

  it('a non-object payload and an empty payload are echoed as-is', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'noop' });
    const [a, b] = await h.queue.addBulk([
      { name: 'fetch-job', data: 'plain string' },
      { name: 'fetch-job', data: undefined },
    ]);
    await h.waitForCounts({ completed: 2 });
    assert.deepEqual((await h.job(a.id)).returnvalue, { processed: true, echo: 'plain string' });
    assert.deepEqual((await h.job(b.id)).returnvalue, { processed: true, echo: {} });
  });

  it('custom string job ids work like numeric ones, cache key included', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'noop' });
    const jobId = 'B01-3-2024-05-01';
    const job = await h.queue.add('fetch-job', { branch: 'B01' }, { jobId });
    assert.equal(job.id, jobId);
    assert.deepEqual(await s.withTimeout(job.waitUntilFinished(h.queueEvents), 10000, 'waitUntilFinished'), { processed: true, echo: { branch: 'B01' } });
    assert.equal(await (await h.job(jobId)).getState(), 'completed');
    const cached = await h.waitUntil(() => h.cache.get(`fetch-worker:result:${h.queueName}:${jobId}`), { message: 'cache entry for the custom id' });
    assert.equal(JSON.parse(cached).status, 'completed');
  });

  it('an idle worker picks up a new job at once (marker wake-up, not the DRAIN_DELAY_MS poll)', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'noop', env: { DRAIN_DELAY_MS: '5000' } });
    await h.waitUntil(async () => (await h.queue.getWorkers()).length === 1, { message: 'worker up' });
    for (let i = 0; i < 3; i++) {
      await s.sleep(700); // let the worker block on the marker
      const job = await h.queue.add('fetch-job', { i });
      await s.withTimeout(job.waitUntilFinished(h.queueEvents), 10000, `job ${i}`);
      const stored = await h.job(job.id);
      const latency = stored.processedOn - stored.timestamp;
      assert.ok(latency < 1000, `job ${i} picked up ${latency} ms after add (a 5 s poll would be up to 5000)`);
    }
  });

  it('a thrown error sets failedReason and stacktrace, emits failed, and rejects waitUntilFinished', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const job = await h.queue.add('fetch-job', { message: 'upstream said: 503 "busy"' }, { attempts: 1 });

    await assert.rejects(
      s.withTimeout(job.waitUntilFinished(h.queueEvents), 15000, 'waitUntilFinished'),
      (err) => err.message === 'upstream said: 503 "busy"',
    );
    const failed = await h.waitForEvent((e) => e.event === 'failed' && e.jobId === job.id, { message: 'failed event' });
    assert.equal(failed.failedReason, 'upstream said: 503 "busy"', 'failedReason is the raw message');
    assert.equal(failed.prev, 'active');
    const exhausted = await h.waitForEvent((e) => e.event === 'retries-exhausted' && e.jobId === job.id, { message: 'retries-exhausted event' });
    assert.equal(exhausted.attemptsMade, '1');

    const stored = await h.job(job.id);
    assert.equal(stored.failedReason, 'upstream said: 503 "busy"');
    assert.equal(await h.db.hget(h.key(job.id), 'failedReason'), 'upstream said: 503 "busy"', 'stored raw, not JSON');
    assert.ok(Array.isArray(stored.stacktrace) && stored.stacktrace.length === 1, `one stacktrace entry, got ${JSON.stringify(stored.stacktrace)}`);
    assert.equal(typeof stored.stacktrace[0], 'string');
    assert.ok(stored.stacktrace[0].length > 0, 'the stacktrace entry is not empty');
    assert.equal(stored.attemptsMade, 1);
    assert.ok(stored.finishedOn > 0);
    assert.equal(stored.returnvalue, null);
    assert.equal(await stored.getState(), 'failed');
    assert.equal(await h.db.exists(h.key(`${job.id}:lock`)), 0, 'the lock is released');
  });

  it('the worker writes each result into the cache database with a TTL', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail', env: { RESULT_TTL_SECONDS: '600' } });
    const ok = await h.queue.add('fetch-job', { succeedOnAttempt: 1 });
    const bad = await h.queue.add('fetch-job', { message: 'no such file', fatal: true });
    await h.waitForCounts({ completed: 1, failed: 1 });

    const cacheKey = (id) => `fetch-worker:result:${h.queueName}:${id}`;
    const read = async (id) => {
      const text = await h.cache.get(cacheKey(id));
      return text && JSON.parse(text);
    };
    const okEntry = await h.waitUntil(() => read(ok.id), { message: `cache key ${cacheKey(ok.id)} in db 0` });
    assert.deepEqual(okEntry, { status: 'completed', result: { succeededOnAttempt: 1 } });
    const badEntry = await h.waitUntil(() => read(bad.id), { message: `cache key ${cacheKey(bad.id)} in db 0` });
    assert.deepEqual(badEntry, { status: 'failed', error: 'no such file' });
    for (const id of [ok.id, bad.id]) {
      const ttl = await h.cache.ttl(cacheKey(id));
      assert.ok(ttl > 0 && ttl <= 600, `TTL of ${cacheKey(id)} is ${ttl}, expected 1..600`);
    }
    assert.equal(await h.db.exists(cacheKey(ok.id)), 0, 'results go to the cache db, not the queue db');
  });

  it('queue.getWorkers() lists a running worker under its name and forgets it after SIGTERM', async (t) => {
    const h = await s.setup(t, redis);
    assert.equal((await h.queue.getWorkers()).length, 0, 'no worker before start');
    const worker = h.startWorker({ processor: 'noop', name: 'fw-visible' });
    const workers = await h.waitUntil(async () => {
      const list = await h.queue.getWorkers();
      return list.length > 0 && list;
    }, { message: 'queue.getWorkers() to list the worker' });
    assert.equal(workers.length, 1, `exactly one worker connection is named for the queue: ${JSON.stringify(workers)}`);
    const b64 = Buffer.from(h.queueName).toString('base64');
    assert.equal(workers[0].rawname, `bull:${b64}:w:fw-visible`);

    const { code } = await worker.stop('SIGTERM');
    assert.equal(code, 0, 'SIGTERM exits 0');
    assert.equal((await h.queue.getWorkers()).length, 0, 'no worker after exit');
  });

  it('--until-drained exits 0 once nothing is waiting, delayed or active', async (t) => {
    const h = await s.setup(t, redis);
    await h.queue.addBulk(Array.from({ length: 5 }, (_, i) => ({ name: 'fetch-job', data: { ms: 50 * i } })));
    await h.queue.add('fetch-job', { ms: 10 }, { delay: 700 });
    const worker = h.startWorker({ processor: 'sleep', args: ['--until-drained'] });
    const exit = await s.withTimeout(worker.exited, 20000, 'the --until-drained worker to exit');
    assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null });
    const counts = await h.counts();
    assert.equal(counts.completed, 6, `all jobs completed before exit: ${JSON.stringify(counts)}`);
  });
});
