'use strict';
// Retries as Node sees them: attemptsMade counting, backoff delays (exponential and fixed) with
// the job parked in `delayed`, immediate retries, non-retryable failures, and the events of each.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

/** Active/delayed/waiting/failed… names of one job, without the queue-wide `drained`. */
const names = (h, id) => h.events.namesFor(id);

describe(`retries and backoff (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('exponential backoff parks the job in delayed for delay, 2×delay, then fails with retries-exhausted', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const base = 400;
    const job = await h.queue.add('fetch-job', { message: 'still broken' }, { attempts: 3, backoff: { type: 'exponential', delay: base } });

    // After each failed attempt: the delayed event, the job in `delayed`, attemptsMade bumped.
    for (let n = 1; n <= 2; n++) {
      const delayed = await h.waitUntil(() => h.events.filter({ event: 'delayed', jobId: job.id })[n - 1], { message: `delayed event #${n}` });
      const stored = await h.job(job.id);
      const expectedDelay = base * 2 ** (n - 1);
      assert.equal(await stored.getState(), 'delayed', `between attempts the job is delayed (after attempt ${n})`);
      assert.equal(stored.attemptsMade, n);
      assert.equal(stored.delay, expectedDelay, 'the hash keeps the relative delay');
      assert.equal(stored.failedReason, 'still broken', 'failedReason is written on every failed attempt');
      assert.equal(typeof delayed.delay, 'number', 'QueueEvents makes delay numeric');
      const lead = delayed.delay - delayed.at;
      assert.ok(lead > expectedDelay - 100 && lead <= expectedDelay + 50,
        `delayed #${n}: delay field is the absolute due time (due - event time = ${lead} ms, backoff ${expectedDelay} ms)`);
    }

    const failed = await h.waitForEvent((e) => e.event === 'failed' && e.jobId === job.id, { timeout: 15000, message: 'final failed event' });
    assert.equal(failed.failedReason, 'still broken');
    const exhausted = await h.waitForEvent((e) => e.event === 'retries-exhausted' && e.jobId === job.id, { message: 'retries-exhausted' });
    assert.equal(exhausted.attemptsMade, '3');
    assert.deepEqual(names(h, job.id), [
      'added', 'waiting',
      'active', 'delayed', 'waiting', 'active', 'delayed', 'waiting', 'active',
      'failed', 'retries-exhausted',
    ]);
    assert.equal(h.events.filter({ event: 'waiting', jobId: job.id })[1].prev, 'delayed', 'promotion emits waiting prev=delayed');

    const stored = await h.job(job.id);
    assert.equal(stored.attemptsMade, 3);
    assert.equal(stored.attemptsStarted, 3);
    assert.equal(stored.stacktrace.length, 3, 'one stacktrace entry per failed attempt');
    assert.equal(await stored.getState(), 'failed');

    const actives = h.events.filter({ event: 'active', jobId: job.id }).map((e) => e.at);
    assert.ok(actives[1] - actives[0] >= base - 20, `second attempt ${actives[1] - actives[0]} ms after the first (>= ${base})`);
    assert.ok(actives[2] - actives[1] >= 2 * base - 20, `third attempt ${actives[2] - actives[1]} ms after the second (>= ${2 * base})`);
  });

  it('fixed backoff retries after the same delay and a later success completes the job', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const job = await h.queue.add('fetch-job', { message: 'flaky', succeedOnAttempt: 3 }, { attempts: 5, backoff: { type: 'fixed', delay: 250 } });
    const returned = await s.withTimeout(job.waitUntilFinished(h.queueEvents), 15000, 'waitUntilFinished');
    assert.deepEqual(returned, { succeededOnAttempt: 3 });

    const delays = h.events.filter({ event: 'delayed', jobId: job.id });
    assert.equal(delays.length, 2);
    for (const d of delays) {
      const lead = d.delay - d.at;
      assert.ok(lead > 150 && lead <= 300, `fixed backoff: due ${lead} ms after the event, expected ~250`);
    }
    const stored = await h.job(job.id);
    assert.equal(stored.attemptsMade, 3);
    assert.equal(stored.failedReason, 'flaky', 'failedReason of the last failed attempt stays after success');
    assert.equal(stored.stacktrace.length, 2);
    assert.equal(h.events.filter({ event: 'failed', jobId: job.id }).length, 0, 'retried attempts emit no failed event');
    assert.equal(h.events.filter({ event: 'retries-exhausted', jobId: job.id }).length, 0);
  });

  it('the app default options (attempts 3, exponential 1000 ms) retry an enqueued job three times', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const job = await h.queue.add('fetch-job', { message: 'always' });
    assert.deepEqual(job.opts.backoff, { type: 'exponential', delay: 1000 });
    assert.equal(job.opts.attempts, 3);
    const failed = await h.waitForEvent((e) => e.event === 'failed' && e.jobId === job.id, { timeout: 15000, message: 'final failure' });
    assert.equal(failed.failedReason, 'always');
    const leads = h.events.filter({ event: 'delayed', jobId: job.id }).map((e) => e.delay - e.at);
    assert.equal(leads.length, 2);
    assert.ok(leads[0] > 900 && leads[0] <= 1050, `first backoff ~1000 ms, got ${leads[0]}`);
    assert.ok(leads[1] > 1900 && leads[1] <= 2050, `second backoff ~2000 ms, got ${leads[1]}`);
    assert.equal((await h.job(job.id)).attemptsMade, 3);
  });

  it('without backoff a failed attempt goes straight back to wait (waiting prev=active)', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const job = await h.queue.add('fetch-job', { succeedOnAttempt: 2 }, { attempts: 2, backoff: undefined });
    const returned = await s.withTimeout(job.waitUntilFinished(h.queueEvents), 10000, 'waitUntilFinished');
    assert.deepEqual(returned, { succeededOnAttempt: 2 });
    assert.deepEqual(names(h, job.id), ['added', 'waiting', 'active', 'waiting', 'active', 'completed']);
    assert.equal(h.events.filter({ event: 'waiting', jobId: job.id })[1].prev, 'active');
    const stored = await h.job(job.id);
    assert.equal(stored.attemptsMade, 2);
    assert.equal(stored.failedReason, 'failed by request', 'default failure message');
  });

  it('stackTraceLimit keeps only the newest stack traces', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const limited = await h.queue.add('fetch-job', {}, { attempts: 3, backoff: undefined, stackTraceLimit: 2 });
    const none = await h.queue.add('fetch-job', {}, { attempts: 2, backoff: undefined, stackTraceLimit: 0 });
    await h.waitForCounts({ failed: 2 });
    assert.equal((await h.job(limited.id)).stacktrace.length, 2, 'limit 2 after 3 failures');
    assert.deepEqual((await h.job(none.id)).stacktrace, [], 'limit 0 keeps none');
  });

  it('a non-retryable failure fails at once: attemptsMade 1, no delayed, no retries-exhausted', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const job = await h.queue.add('fetch-job', { message: 'bad input', fatal: true }, { attempts: 5, backoff: { type: 'fixed', delay: 100 } });
    await assert.rejects(s.withTimeout(job.waitUntilFinished(h.queueEvents), 10000, 'waitUntilFinished'), /bad input/);
    // A later job proves the worker moved on, so no late retry event can still be pending.
    const probe = await h.queue.add('fetch-job', { succeedOnAttempt: 1 });
    await s.withTimeout(probe.waitUntilFinished(h.queueEvents), 10000, 'probe job');

    assert.deepEqual(names(h, job.id), ['added', 'waiting', 'active', 'failed']);
    const stored = await h.job(job.id);
    assert.equal(stored.attemptsMade, 1);
    assert.equal(stored.failedReason, 'bad input');
    assert.equal(stored.stacktrace.length, 1);
    assert.equal(await stored.getState(), 'failed');
  });

  it('a single-attempt failure emits retries-exhausted with attemptsMade 1', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const job = await h.queue.add('fetch-job', {}, { attempts: 1 });
    const ex = await h.waitForEvent((e) => e.event === 'retries-exhausted' && e.jobId === job.id, { message: 'retries-exhausted' });
    assert.equal(ex.attemptsMade, '1');
    assert.deepEqual(names(h, job.id), ['added', 'waiting', 'active', 'failed', 'retries-exhausted']);
  });

  it('a failed job retried from Node (Bull Board\'s "retry") runs again and completes', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const job = await h.queue.add('fetch-job', { message: 'first run fails', succeedOnAttempt: 2 }, { attempts: 1 });
    await assert.rejects(s.withTimeout(job.waitUntilFinished(h.queueEvents), 10000, 'first run'), /first run fails/);
    await (await h.job(job.id)).retry('failed');
    await h.waitForEvent((e) => e.event === 'completed' && e.jobId === job.id, { message: 'completed after retry' });
    const stored = await h.job(job.id);
    assert.deepEqual(stored.returnvalue, { succeededOnAttempt: 2 }, 'attemptsMade survives a retry without reset');
    assert.equal(stored.attemptsMade, 2);
    assert.equal(await stored.getState(), 'completed');
    assert.equal(h.events.filter({ event: 'waiting', jobId: job.id }).at(-1).prev, 'failed');
  });
});
