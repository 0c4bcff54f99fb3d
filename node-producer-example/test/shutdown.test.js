'use strict';
// SIGTERM: the worker stops claiming, lets in-flight jobs finish within SHUTDOWN_TIMEOUT_MS and
// exits 0; a job still running after the timeout is left active for stalled recovery (what Node
// does) or handed back to wait (moveJobFromActiveToWait semantics). No job is lost.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

describe(`SIGTERM (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('in-flight jobs finish, nothing new is claimed, exit 0; another worker does the rest', async (t) => {
    const h = await s.setup(t, redis);
    const w1 = h.startWorker({ processor: 'sleep', name: 'w1', env: { JOB_CONCURRENCY: '3' } });
    const jobs = await h.queue.addBulk(Array.from({ length: 8 }, (_, i) => ({ name: 'fetch-job', data: { ms: 1000, i } })));
    await h.waitUntil(() => h.events.filter({ event: 'progress' }).filter((e) => e.data === 0).length >= 3, { message: '3 jobs running on w1' });
    const inFlight = h.events.filter({ event: 'active' }).map((e) => e.jobId);
    assert.equal(inFlight.length, 3, `concurrency 3: ${inFlight}`);

    const exit = await w1.stop('SIGTERM', 10000);
    assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, 'SIGTERM exits 0');
    const afterStop = await h.counts();
    assert.equal(afterStop.completed, 3, `the in-flight jobs completed before exit: ${JSON.stringify(afterStop)}`);
    assert.equal(afterStop.active, 0, 'nothing left active');
    assert.equal(afterStop.wait + afterStop.paused, 5, 'no new job claimed after SIGTERM');
    for (const id of inFlight) {
      const job = await h.job(id);
      assert.equal(await job.getState(), 'completed');
      assert.equal(job.processedBy, 'w1');
    }

    h.startWorker({ processor: 'sleep', name: 'w2', env: { JOB_CONCURRENCY: '5' } });
    await h.waitForCounts({ completed: 8, failed: 0, active: 0 }, { timeout: 15000 });
    for (const job of jobs) {
      assert.equal(h.events.filter({ event: 'active', jobId: job.id }).length, 1, `job ${job.id} ran exactly once`);
    }
    assert.equal(h.events.filter({ event: 'stalled' }).length, 0);
  });

  it('a job outliving SHUTDOWN_TIMEOUT_MS is not lost: left active or handed back, then completed by another worker', async (t) => {
    const h = await s.setup(t, redis);
    const w1 = h.startWorker({ processor: 'sleep', name: 'w1', env: { SHUTDOWN_TIMEOUT_MS: '300' } });
    const job = await h.queue.add('fetch-job', { ms: 3000 });
    await h.waitForEvent((e) => e.event === 'progress' && e.jobId === job.id, { message: 'job running on w1' });
    const started = Date.now();
    const exit = await w1.stop('SIGTERM', 5000);
    assert.equal(exit.code, 0, 'exits 0 after the shutdown timeout');
    assert.ok(Date.now() - started < 2500, `exited after the shutdown timeout, not after the job (${Date.now() - started} ms)`);

    // Two accepted outcomes: the job stays active (its lock expires, stalled recovery takes it:
    // what a Node worker does), or the worker hands it back to wait without using an attempt
    // (BullMQ's moveJobFromActiveToWait: waiting prev=active, lock deleted, atm unchanged).
    const state = await job.getState();
    assert.ok(state === 'active' || state === 'waiting', `left active or handed back to wait, got ${state}`);
    const handedBack = state === 'waiting';
    if (handedBack) {
      assert.equal(h.events.filter({ event: 'waiting', jobId: job.id }).at(-1).prev, 'active');
      assert.equal(await h.db.exists(h.key(`${job.id}:lock`)), 0, 'lock released when handed back');
      assert.equal((await h.job(job.id)).attemptsMade, 0, 'handing back uses no attempt');
    }

    h.startWorker({ processor: 'sleep', name: 'w2' });
    assert.deepEqual(await s.withTimeout(job.waitUntilFinished(h.queueEvents), 20000, 'recovered job to finish'), { slept: 3000 });
    const stored = await h.job(job.id);
    assert.equal(stored.processedBy, 'w2');
    assert.equal(stored.attemptsMade, 1);
    assert.equal(stored.attemptsStarted, 2);
    assert.equal(h.events.filter({ event: 'stalled', jobId: job.id }).length, handedBack ? 0 : 1);
  });
});
