'use strict';
// A Redis restart mid-run (SIGTERM, AOF kept, same port): the worker reconnects on its own and
// every job completes. This file owns its redis-server, so restarting it disturbs no other test.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

describe(`Redis restart (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('the worker reconnects after Redis restarts and all jobs complete', async (t) => {
    const h = await s.setup(t, redis);
    const worker = h.startWorker({ processor: 'sleep', env: { JOB_CONCURRENCY: '2' } });
    const total = 60;
    await h.queue.addBulk(Array.from({ length: total }, (_, i) => ({ name: 'fetch-job', data: { ms: 50, i } })));
    await h.waitUntil(async () => (await h.counts()).completed >= 15, { message: '15 jobs completed before the restart' });

    await redis.server.restart();
    const afterRestart = await h.waitUntil(() => h.counts().catch(() => null), { message: 'Redis answering again' });
    assert.ok(afterRestart.completed >= 15, `the AOF kept the queue: ${JSON.stringify(afterRestart)}`);
    assert.ok(afterRestart.completed < total, `the restart happened mid-run: ${JSON.stringify(afterRestart)}`);

    const done = await h.waitForCounts({ completed: total }, { timeout: 30000 });
    assert.deepEqual([done.failed, done.active, done.wait, done.delayed, done.prioritized], [0, 0, 0, 0, 0], JSON.stringify(done));
    assert.equal(worker.exit, null, 'the worker survived the restart');
    const jobs = await h.queue.getJobs(['completed'], 0, -1);
    assert.equal(jobs.length, total);
    for (const job of jobs) assert.deepEqual(job.returnvalue, { slept: 50 });
  });
});
