'use strict';
// What a processor can ask of the worker besides completing or failing, seen from the outside
// through the test processors' job data: move itself to delayed (Node's `job.moveToDelayed`
// + `DelayedError`), replace its data (`job.updateData`), give up without retrying
// (`job.discard()`).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

/** A job's event names without `progress` (the sleep processor reports many). */
const lifecycle = (h, id) => h.events.namesFor(id).filter((n) => n !== 'progress');

describe(`processor API (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('delayMs parks the job in delayed once without counting an attempt, then it completes', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const job = await h.queue.add('fetch-job', { ms: 50, delayMs: 500 });

    // While parked: delayed, no attempt counted, no failure written, the reason in the log.
    const delayed = await h.waitForEvent((e) => e.event === 'delayed' && e.jobId === job.id, { message: 'delayed event' });
    const parked = await h.job(job.id);
    assert.equal(await parked.getState(), 'delayed');
    assert.equal(parked.attemptsMade, 0, 'a deferral is not an attempt');
    assert.equal(parked.attemptsStarted, 1);
    assert.ok(!parked.failedReason, `no failedReason, got ${JSON.stringify(parked.failedReason)}`);
    assert.deepEqual(parked.stacktrace, []);
    assert.ok(parked.delay > 400 && parked.delay <= 500, `the hash keeps the relative delay, got ${parked.delay}`);
    const lead = delayed.delay - delayed.at;
    assert.ok(lead > 400 && lead <= 500, `delayed event carries the absolute due time (due - event time = ${lead} ms)`);
    assert.deepEqual((await h.queue.getJobLogs(job.id)).logs, ['delayed for 500 ms']);
    const due = await h.db.zscore(h.key('delayed'), job.id);
    assert.equal(Math.floor(Number(due) / 4096), delayed.delay, 'the delayed set scores the job at its due time');

    const returned = await s.withTimeout(job.waitUntilFinished(h.queueEvents), 10000, 'waitUntilFinished');
    assert.deepEqual(returned, { slept: 50 });
    assert.deepEqual(lifecycle(h, job.id), ['added', 'waiting', 'active', 'delayed', 'waiting', 'active', 'completed']);
    assert.equal(h.events.filter({ event: 'waiting', jobId: job.id })[1].prev, 'delayed', 'promoted from delayed');
    const secondRun = h.events.filter({ event: 'active', jobId: job.id })[1];
    assert.ok(secondRun.at >= delayed.delay, `ran again only once due (${secondRun.at} >= ${delayed.delay})`);

    const done = await h.job(job.id);
    assert.equal(done.attemptsMade, 1, 'only the completing run counts');
    assert.equal(done.attemptsStarted, 2);
    assert.ok(!done.failedReason);
    assert.deepEqual((await h.queue.getJobLogs(job.id)).logs, ['delayed for 500 ms', 'sleeping 50 ms', 'slept 50 ms']);
    assert.equal(h.events.filter({ event: 'failed', jobId: job.id }).length, 0, 'never failed');
  });

  it('a deferral frees the slot for the next job at once (fetch-next), even with attempts 1', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const parked = await h.queue.add('fetch-job', { ms: 0, delayMs: 700 }, { attempts: 1 });
    const plain = await h.queue.add('fetch-job', { ms: 50 });
    await h.waitForCounts({ completed: 2 }, { timeout: 10000 });
    const completions = h.events.filter({ event: 'completed' }).map((e) => e.jobId);
    assert.deepEqual(completions, [plain.id, parked.id], 'the plain job ran while the other waited');
    assert.deepEqual(lifecycle(h, parked.id), ['added', 'waiting', 'active', 'delayed', 'waiting', 'active', 'completed']);
    const done = await h.job(parked.id);
    assert.equal(done.attemptsMade, 1, 'attempts 1 is not used up by the deferral');
    assert.equal(await done.getState(), 'completed');
  });

  it('setData replaces the job data (job.updateData), visible to Node readers', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const job = await h.queue.add('fetch-job', { ms: 0, setData: { branch: 'BMC', done: true } });
    await s.withTimeout(job.waitUntilFinished(h.queueEvents), 10000, 'waitUntilFinished');
    const stored = await h.job(job.id);
    assert.deepEqual(stored.data, { branch: 'BMC', done: true });
    assert.deepEqual(stored.returnvalue, { slept: 0 });
  });

  it('discard fails the job at once although attempts remain (bullmq 5 job.discard())', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const job = await h.queue.add('fetch-job', { discard: true, message: 'give up' }, { attempts: 3, backoff: { type: 'fixed', delay: 100 } });
    const failed = await h.waitForEvent((e) => e.event === 'failed' && e.jobId === job.id, { timeout: 10000, message: 'failed' });
    assert.equal(failed.failedReason, 'give up');
    const stored = await h.job(job.id);
    assert.equal(await stored.getState(), 'failed');
    assert.equal(stored.attemptsMade, 1, 'no retry');
    assert.equal(stored.stacktrace.length, 1);
    // A plain Error after job.discard() in bullmq 5; bullmq 6 has no discard(), so its
    // reference worker throws an UnrecoverableError instead.
    assert.match(stored.stacktrace[0], /^(Unrecoverable)?Error: give up/);
    assert.deepEqual(lifecycle(h, job.id), ['added', 'waiting', 'active', 'failed'], 'no delayed, no retries-exhausted');
  });
});
