'use strict';
// When the worker cannot end an attempt the way the processor asked: a completion refused by
// Redis (pending children), a lock that another worker owns by the time the job ends, and a
// backoff type nobody knows. Each ends as it does under a Node Worker (5.81 and 6.x).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

/** A job's event names without `progress`. */
const lifecycle = (h, id) => h.events.namesFor(id).filter((n) => n !== 'progress');

describe(`finish errors (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('completing a job with a pending child fails the attempt with upstream\'s reason instead of stalling', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const parent = await h.queue.add('fetch-job', { ms: 800 }, { attempts: 2, backoff: undefined });
    await h.waitForEvent((e) => e.event === 'active' && e.jobId === parent.id, { message: 'parent active' });
    // A child in a queue nobody works on becomes a pending dependency of the running parent.
    const childQueue = new h.bullmq.Queue(`${h.queueName}-child`, { connection: h.db.options, prefix: s.PREFIX });
    t.after(() => childQueue.close());
    const child = await childQueue.add('child', {}, { parent: { id: parent.id, queue: `${s.PREFIX}:${h.queueName}` } });
    assert.equal(await h.db.sismember(h.key(`${parent.id}:dependencies`), `${s.PREFIX}:${h.queueName}-child:${child.id}`), 1);

    const failed = await h.waitForEvent((e) => e.event === 'failed' && e.jobId === parent.id, { timeout: 15000, message: 'parent failed' });
    const reason = `Job ${parent.id} has pending dependencies. moveToFinished`;
    assert.equal(failed.failedReason, reason);
    assert.deepEqual(lifecycle(h, parent.id), ['added', 'waiting', 'active', 'waiting', 'active', 'failed', 'retries-exhausted'],
      'the refused completion counts as a failed attempt: retried once, then failed');
    const stored = await h.job(parent.id);
    assert.equal(await stored.getState(), 'failed');
    assert.equal(stored.failedReason, reason);
    assert.equal(stored.attemptsMade, 2);
    assert.equal(stored.stalledCounter, 0, 'never stalled');
    assert.equal(h.events.filter({ event: 'stalled', jobId: parent.id }).length, 0);
    assert.equal(await h.db.exists(h.key(`${parent.id}:lock`)), 0, 'lock released');
  });

  it('a job whose lock another worker owns at the end keeps that owner\'s lock and TTL', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const taken = await h.queue.add('fetch-job', { ms: 1200 });
    const next = await h.queue.add('fetch-job', { ms: 0 });
    await h.waitForEvent((e) => e.event === 'progress' && e.jobId === taken.id, { message: 'first job running' });
    // Another worker took the job over (as after a stall) with a long lock.
    const lockKey = h.key(`${taken.id}:lock`);
    await h.db.set(lockKey, 'someone-else', 'PX', 60000);

    // The worker moves on to the next job once it gave up on the first.
    await h.waitForEvent((e) => e.event === 'completed' && e.jobId === next.id, { timeout: 10000, message: 'next job completed' });
    assert.equal(await h.db.get(lockKey), 'someone-else', 'the other owner\'s lock is untouched');
    const ttl = await h.db.pttl(lockKey);
    assert.ok(ttl > 50000, `the other owner's TTL is kept, got ${ttl} ms`);
    const stored = await h.job(taken.id);
    assert.equal(await stored.getState(), 'active', 'left to its owner');
    assert.equal(stored.attemptsMade, 0);
    assert.equal(h.events.filter({ event: 'completed', jobId: taken.id }).length, 0);
    assert.equal(h.events.filter({ event: 'failed', jobId: taken.id }).length, 0);
  });

  it('an unknown backoff type is left to stall, as a Node worker whose backoff lookup throws', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const job = await h.queue.add('fetch-job', { message: 'broken' }, { attempts: 3, backoff: { type: 'linear', delay: 100 } });
    const failed = await h.waitForEvent((e) => e.event === 'failed' && e.jobId === job.id, { timeout: 20000, message: 'job failed' });
    // The retry cannot be planned, so the attempt never ends: the lock lapses, stalled recovery
    // runs it again, and past MAX_STALLED_COUNT (1) it fails with the stalled reason.
    assert.equal(failed.failedReason, 'job stalled more than allowable limit');
    assert.deepEqual(lifecycle(h, job.id), [
      'added', 'waiting',
      'active', 'waiting', 'stalled',
      'active', 'waiting', 'stalled',
      'active', 'failed',
    ]);
    const stored = await h.job(job.id);
    assert.equal(await stored.getState(), 'failed');
    assert.equal(stored.stalledCounter, 2);
    assert.equal(h.events.filter({ event: 'delayed', jobId: job.id }).length, 0, 'no retry was scheduled');
    assert.ok(stored.stacktrace.every((line) => !line.includes('Unknown(')), 'no Rust debug text');
  });
});
