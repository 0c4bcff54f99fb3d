'use strict';
// One queue's QueueEvents must see every event a Node worker would cause, with the fields Node
// parses: active, progress, completed, failed, retries-exhausted, stalled, waiting, delayed,
// drained. The scenario runs three workers one after the other on the same queue.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

describe(`QueueEvents (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('sees active, progress, completed, failed, retries-exhausted, stalled, waiting, delayed and drained', async (t) => {
    const h = await s.setup(t, redis);
    const ev = (event, jobId) => h.events.filter({ event, jobId });

    // 1. A delayed job on a sleep worker: delayed → waiting (prev delayed) → active → progress → completed → drained.
    const w1 = h.startWorker({ processor: 'sleep' });
    const delayedJob = await h.queue.add('fetch-job', { ms: 100 }, { delay: 300 });
    await h.waitForEvent((e) => e.event === 'completed' && e.jobId === delayedJob.id, { message: 'delayed job completed' });
    await h.waitForEvent((e) => e.event === 'drained', { message: 'drained after the first job' });
    await s.sleep(1500); // idle for longer than DRAIN_DELAY_MS: polling must not emit more
    assert.equal(h.events.filter({ event: 'drained' }).length, 1, 'drained is emitted once when the queue empties, not while idle');

    // 2. A job whose worker is SIGKILLed mid-run: stalled → waiting (prev active) → active on another worker.
    const stalledJob = await h.queue.add('fetch-job', { ms: 1500 });
    await h.waitForEvent((e) => e.event === 'active' && e.jobId === stalledJob.id, { message: 'stalled candidate active' });
    w1.kill('SIGKILL');
    const w2 = h.startWorker({ processor: 'sleep' });
    await h.waitForEvent((e) => e.event === 'completed' && e.jobId === stalledJob.id, { timeout: 15000, message: 'stalled job completed by the second worker' });
    await w2.stop('SIGTERM');

    // 3. A failing job with one backoff: delayed → waiting → active → failed → retries-exhausted.
    h.startWorker({ processor: 'fail' });
    const failingJob = await h.queue.add('fetch-job', { message: 'nope' }, { attempts: 2, backoff: { type: 'fixed', delay: 200 } });
    await h.waitForEvent((e) => e.event === 'retries-exhausted' && e.jobId === failingJob.id, { message: 'retries-exhausted' });
    const lastDrained = await h.waitForEvent((e) => e.event === 'drained' && e.at >= ev('failed', failingJob.id)[0].at, { message: 'drained after the failure' });
    assert.ok(lastDrained);

    const seen = new Set(h.events.entries.map((e) => e.event));
    for (const name of ['active', 'progress', 'completed', 'failed', 'retries-exhausted', 'stalled', 'waiting', 'delayed', 'drained']) {
      assert.ok(seen.has(name), `QueueEvents saw ${name}`);
    }

    // Fields Node relies on.
    assert.equal(ev('delayed', delayedJob.id)[0].delay, delayedJob.timestamp + 300, 'delayed.delay = timestamp + delay');
    assert.equal(ev('waiting', delayedJob.id).at(-1).prev, 'delayed');
    for (const a of ev('active')) assert.equal(a.prev, 'waiting', 'active.prev is waiting');
    assert.deepEqual(ev('completed', delayedJob.id)[0].returnvalue, { slept: 100 });
    assert.equal(ev('completed', delayedJob.id)[0].prev, 'active');
    assert.ok(ev('progress', delayedJob.id).every((e) => typeof e.data === 'number'));

    assert.equal(ev('stalled', stalledJob.id).length, 1, 'exactly one stalled event');
    const afterStall = h.events.filter({ jobId: stalledJob.id }).map((e) => e.event);
    const i = afterStall.indexOf('stalled');
    assert.deepEqual(afterStall.slice(i - 1, i + 3), ['waiting', 'stalled', 'active', 'progress'],
      `stalled recovery: waiting(prev active) + stalled, then active again: ${afterStall}`);
    assert.equal(ev('waiting', stalledJob.id).at(-1).prev, 'active');
    assert.equal(ev('active', stalledJob.id).length, 2);

    assert.equal(ev('failed', failingJob.id).length, 1, 'failed is emitted once, for the final failure');
    assert.equal(ev('failed', failingJob.id)[0].failedReason, 'nope');
    assert.equal(ev('retries-exhausted', failingJob.id)[0].attemptsMade, '2');
    const retryDelay = ev('delayed', failingJob.id)[0];
    assert.ok(retryDelay.delay - retryDelay.at > 100 && retryDelay.delay - retryDelay.at <= 250, 'retry delayed event carries the due time');
  });
});
