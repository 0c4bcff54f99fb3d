'use strict';
// Crashed workers: a job whose worker is SIGKILLed is recovered by another worker's stalled
// check (LOCK_DURATION_MS=2000, STALLED_INTERVAL_MS=1000); beyond MAX_STALLED_COUNT it is failed
// with BullMQ's reason; a long job whose lock is renewed is never taken as stalled.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

/** Waits until the job is inside the processor of some worker (its first progress report). */
function waitForRunning(h, jobId, n) {
  return h.waitUntil(() => h.events.filter({ event: 'progress', jobId }).filter((e) => e.data === 0)[n - 1],
    { timeout: 15000, message: `job ${jobId} to start running (run #${n})` });
}

describe(`stalled jobs (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('a job whose worker is SIGKILLed mid-run is recovered and completed by another worker', async (t) => {
    const h = await s.setup(t, redis);
    const w1 = h.startWorker({ processor: 'sleep', name: 'w1' });
    const job = await h.queue.add('fetch-job', { ms: 1500 });
    await waitForRunning(h, job.id, 1);
    w1.kill('SIGKILL');
    assert.equal((await s.withTimeout(w1.exited, 5000, 'w1 to die')).signal, 'SIGKILL');
    assert.equal(await job.getState(), 'active', 'still active right after the crash');

    h.startWorker({ processor: 'sleep', name: 'w2' });
    const returned = await s.withTimeout(job.waitUntilFinished(h.queueEvents), 20000, 'recovered job to finish');
    assert.deepEqual(returned, { slept: 1500 });

    const stored = await h.job(job.id);
    assert.equal(stored.processedBy, 'w2');
    assert.equal(stored.stalledCounter, 1);
    assert.equal(stored.attemptsStarted, 2);
    assert.equal(stored.attemptsMade, 1, 'a stall does not consume an attempt');
    assert.equal(h.events.filter({ event: 'stalled', jobId: job.id }).length, 1);
    assert.equal(h.events.filter({ event: 'active', jobId: job.id }).length, 2);
    assert.deepEqual((await h.queue.getJobLogs(job.id)).logs, ['sleeping 1500 ms', 'sleeping 1500 ms', 'slept 1500 ms']);
    assert.equal(await h.db.sismember(h.key('stalled'), job.id), 0, 'removed from the stalled candidates');
    assert.equal(await h.db.exists(h.key(`${job.id}:lock`)), 0);
  });

  it('a job stalled more than MAX_STALLED_COUNT times fails with "job stalled more than allowable limit"', async (t) => {
    const h = await s.setup(t, redis);
    const job = await h.queue.add('fetch-job', { ms: 5000 });
    for (let run = 1; run <= 2; run++) {
      const w = h.startWorker({ processor: 'sleep', name: `crash-${run}` });
      await waitForRunning(h, job.id, run);
      w.kill('SIGKILL');
      await s.withTimeout(w.exited, 5000, `crash-${run} to die`);
    }
    h.startWorker({ processor: 'sleep', name: 'survivor' });
    const failed = await h.waitForEvent((e) => e.event === 'failed' && e.jobId === job.id, { timeout: 20000, message: 'the over-stalled job to fail' });
    assert.equal(failed.failedReason, 'job stalled more than allowable limit');

    const stored = await h.job(job.id);
    assert.equal(await stored.getState(), 'failed');
    assert.equal(stored.failedReason, 'job stalled more than allowable limit');
    assert.equal(stored.stalledCounter, 2);
    assert.equal(stored.attemptsStarted, 3);
    assert.equal(stored.attemptsMade, 1);
    assert.equal(stored.processedBy, 'survivor');
    assert.equal(await h.db.hexists(h.key(job.id), 'defa'), 0, 'defa is cleared when the job is failed');
    assert.equal(h.events.filter({ event: 'stalled', jobId: job.id }).length, 2);
    assert.equal(h.events.filter({ event: 'retries-exhausted', jobId: job.id }).length, 0, 'attempts (3) were left');
    assert.equal(h.events.filter({ event: 'completed', jobId: job.id }).length, 0);
    assert.deepEqual((await h.queue.getJobLogs(job.id)).logs, ['sleeping 5000 ms', 'sleeping 5000 ms'],
      'the processor is not run for a job carrying a deferred failure');
  });

  it('a job running longer than the lock duration keeps its lock and is not stalled', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep', name: 'long' });
    h.startWorker({ processor: 'sleep', name: 'checker' });
    const job = await h.queue.add('fetch-job', { ms: 4500 });
    const returned = await s.withTimeout(job.waitUntilFinished(h.queueEvents), 15000, 'long job to finish');
    assert.deepEqual(returned, { slept: 4500 });
    assert.equal(h.events.filter({ event: 'stalled' }).length, 0, 'no stalled event');
    assert.equal(h.events.filter({ event: 'active', jobId: job.id }).length, 1, 'claimed once');
    assert.equal((await h.job(job.id)).stalledCounter, 0);
  });
});
