'use strict';
// Processing order with concurrency 1, read from the order of `active` events and from
// processedOn: priority (lower first, FIFO within a priority, plain jobs before prioritized),
// LIFO (next to run), delay (run when due, in due order).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

/**
 * Checks the processing order: the `active` events come in `expected` order, and processedOn
 * never decreases along it (noop jobs often share a millisecond, so ties are allowed).
 */
async function assertProcessingOrder(h, expected) {
  const activeOrder = h.events.filter({ event: 'active' }).map((e) => e.jobId);
  assert.deepEqual(activeOrder, expected, 'active events order');
  const processedOn = await Promise.all(expected.map(async (id) => (await h.job(id)).processedOn));
  assert.ok(processedOn.every((p, i) => i === 0 || p >= processedOn[i - 1]),
    `processedOn non-decreasing in the expected order: ${processedOn}`);
}

describe(`ordering (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('priority: plain jobs first, then lowest priority number, FIFO within one priority', async (t) => {
    const h = await s.setup(t, redis);
    const add = (tag, priority) => h.queue.add('fetch-job', { tag }, priority ? { priority } : {});
    const jobs = [await add('a', 5), await add('b', 1), await add('c', 3), await add('d'), await add('e', 1), await add('f', 2)];
    assert.equal(await jobs[0].getState(), 'prioritized');
    h.startWorker({ processor: 'noop' });
    await h.waitForCounts({ completed: jobs.length });
    const byTag = Object.fromEntries(jobs.map((j) => [j.data.tag, j.id]));
    const expected = ['d', 'b', 'e', 'f', 'c', 'a'].map((tag) => byTag[tag]);
    await assertProcessingOrder(h, expected);
    assert.equal(await h.db.exists(h.key('pc')), 0, 'priority counter reset once prioritized is empty');
  });

  it('lifo: a LIFO job runs next, the last LIFO job first', async (t) => {
    const h = await s.setup(t, redis);
    const add = (tag, lifo) => h.queue.add('fetch-job', { tag }, lifo ? { lifo: true } : {});
    const jobs = [await add('a'), await add('b'), await add('c'), await add('d', true), await add('e', true)];
    h.startWorker({ processor: 'noop' });
    await h.waitForCounts({ completed: jobs.length });
    const byTag = Object.fromEntries(jobs.map((j) => [j.data.tag, j.id]));
    const expected = ['e', 'd', 'a', 'b', 'c'].map((tag) => byTag[tag]);
    await assertProcessingOrder(h, expected);
  });

  it('delay: each job runs once due, in due order, regardless of add order', async (t) => {
    const h = await s.setup(t, redis);
    // A long drain delay: a worker that only polls would be seconds late; markers wake it on time.
    h.startWorker({ processor: 'noop', env: { DRAIN_DELAY_MS: '5000' } });
    await h.waitUntil(async () => (await h.queue.getWorkers()).length === 1, { message: 'worker up' });
    const add = (tag, delay) => h.queue.add('fetch-job', { tag }, delay ? { delay } : {});
    const jobs = [await add('a', 1500), await add('b', 500), await add('c', 1000), await add('d')];
    assert.equal(await jobs[0].getState(), 'delayed');
    await h.waitForCounts({ completed: jobs.length }, { timeout: 10000 });
    const byTag = Object.fromEntries(jobs.map((j) => [j.data.tag, j.id]));
    const expected = ['d', 'b', 'c', 'a'].map((tag) => byTag[tag]);
    await assertProcessingOrder(h, expected);
    for (const j of jobs) {
      const stored = await h.job(j.id);
      assert.ok(stored.processedOn >= stored.timestamp + (j.opts.delay || 0),
        `job ${j.data.tag} ran ${stored.processedOn - stored.timestamp} ms after add, delay ${j.opts.delay || 0}`);
      assert.ok(stored.processedOn <= stored.timestamp + (j.opts.delay || 0) + 700,
        `job ${j.data.tag} ran promptly once due (${stored.processedOn - stored.timestamp - (j.opts.delay || 0)} ms late)`);
      if (j.opts.delay) {
        assert.equal(h.events.filter({ event: 'waiting', jobId: j.id }).at(-1).prev, 'delayed', 'promoted: waiting prev=delayed');
      }
    }
  });

  it('a delayed job promoted from Node (Bull Board\'s "promote") runs at once', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'noop', env: { DRAIN_DELAY_MS: '5000' } });
    await h.waitUntil(async () => (await h.queue.getWorkers()).length === 1, { message: 'worker up' });
    const job = await h.queue.add('fetch-job', { tag: 'later' }, { delay: 60000 });
    await s.sleep(300);
    assert.equal(await job.getState(), 'delayed');
    const promotedAt = Date.now();
    await job.promote();
    await s.withTimeout(job.waitUntilFinished(h.queueEvents), 10000, 'promoted job');
    const stored = await h.job(job.id);
    assert.ok(stored.processedOn - promotedAt < 1000, `ran ${stored.processedOn - promotedAt} ms after promote`);
    assert.equal(h.events.filter({ event: 'waiting', jobId: job.id }).at(-1).prev, 'delayed');
  });
});
