'use strict';
// Concurrency limits: JOB_CONCURRENCY per worker process, and the queue-wide limits a Node
// Queue (or a dashboard) sets in `meta`: setGlobalConcurrency and setGlobalRateLimit.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

/** The most jobs running at the same moment, from processedOn/finishedOn intervals. */
function maxOverlap(jobs) {
  const edges = [];
  for (const j of jobs) edges.push([j.processedOn, 1], [j.finishedOn, -1]);
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // an end before a start at the same ms
  let running = 0;
  let max = 0;
  for (const [, d] of edges) max = Math.max(max, (running += d));
  return max;
}

describe(`concurrency limits (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('JOB_CONCURRENCY=3 runs three jobs at once, never more', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep', env: { JOB_CONCURRENCY: '3' } });
    await h.queue.addBulk(Array.from({ length: 9 }, () => ({ name: 'fetch-job', data: { ms: 300 } })));
    await h.waitForCounts({ completed: 9 }, { timeout: 15000 });
    const jobs = await h.queue.getJobs(['completed'], 0, -1);
    assert.equal(maxOverlap(jobs), 3);
  });

  it('queue.setGlobalConcurrency(1) holds two workers of concurrency 3 to one job at a time', async (t) => {
    const h = await s.setup(t, redis);
    await h.queue.setGlobalConcurrency(1);
    h.startWorker({ processor: 'sleep', env: { JOB_CONCURRENCY: '3' } });
    h.startWorker({ processor: 'sleep', env: { JOB_CONCURRENCY: '3' } });
    await h.queue.addBulk(Array.from({ length: 6 }, () => ({ name: 'fetch-job', data: { ms: 200 } })));
    await h.waitForCounts({ completed: 6 }, { timeout: 15000 });
    const jobs = await h.queue.getJobs(['completed'], 0, -1);
    assert.equal(maxOverlap(jobs), 1, 'global concurrency respected');
  });

  it('queue.setGlobalRateLimit(2, 1000) lets at most two jobs start per window', async (t) => {
    const h = await s.setup(t, redis);
    await h.queue.setGlobalRateLimit(2, 1000);
    h.startWorker({ processor: 'noop', env: { JOB_CONCURRENCY: '4' } });
    await h.queue.addBulk(Array.from({ length: 6 }, (_, i) => ({ name: 'fetch-job', data: { i } })));
    await h.waitForCounts({ completed: 6 }, { timeout: 15000 });
    const starts = (await h.queue.getJobs(['completed'], 0, -1)).map((j) => j.processedOn).sort((a, b) => a - b);
    assert.ok(starts[2] - starts[0] >= 900, `third start ${starts[2] - starts[0]} ms after the first (window 1000 ms)`);
    assert.ok(starts[4] - starts[2] >= 900, `fifth start ${starts[4] - starts[2]} ms after the third`);
    assert.equal(h.events.filter({ event: 'delayed' }).length, 0, 'rate limiting never moves jobs to delayed');
  });
});
