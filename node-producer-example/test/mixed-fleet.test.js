'use strict';
// Mixed fleet: one Node BullMQ worker and two workers under test share one queue. Every job is
// processed exactly once (one `active` event, attemptsStarted 1, two log lines), every worker
// takes part, and the final counts are consistent.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

describe(`mixed fleet (1 node + 2 ${s.WORKER} workers, bullmq ${version})`, () => {
  it('300 jobs across a Node worker and two workers under test: each processed exactly once', async (t) => {
    const h = await s.setup(t, redis);
    const env = { JOB_CONCURRENCY: '2' };
    const fleet = [
      h.startWorker({ processor: 'sleep', kind: 'node', name: 'node-ref', env }),
      h.startWorker({ processor: 'sleep', name: `${s.WORKER}-a`, env }),
      h.startWorker({ processor: 'sleep', name: `${s.WORKER}-b`, env }),
    ];
    await h.waitUntil(async () => (await h.queue.getWorkers()).length === fleet.length, { message: 'all three workers registered' });

    const total = 300;
    const added = await h.queue.addBulk(Array.from({ length: total }, (_, i) => ({ name: 'fetch-job', data: { ms: 20, i } })));
    const counts = await h.waitForCounts({ completed: total }, { timeout: 60000 });
    assert.deepEqual(
      { failed: counts.failed, active: counts.active, wait: counts.wait, paused: counts.paused, delayed: counts.delayed, prioritized: counts.prioritized },
      { failed: 0, active: 0, wait: 0, paused: 0, delayed: 0, prioritized: 0 },
    );
    await h.waitUntil(() => h.events.filter({ event: 'completed' }).length >= total, { message: 'all completed events' });

    const byWorker = {};
    const jobs = await h.queue.getJobs(['completed'], 0, -1);
    assert.equal(jobs.length, total);
    const logCounts = await Promise.all(jobs.map((j) => h.db.llen(h.key(`${j.id}:logs`))));
    jobs.forEach((job, i) => {
      assert.deepEqual(job.returnvalue, { slept: 20 }, `job ${job.id} has its return value`);
      assert.equal(job.attemptsStarted, 1, `job ${job.id} started once`);
      assert.equal(job.attemptsMade, 1, `job ${job.id} attempted once`);
      assert.equal(h.events.filter({ event: 'active', jobId: job.id }).length, job.attemptsStarted, `job ${job.id}: one active event per start`);
      assert.equal(h.events.filter({ event: 'completed', jobId: job.id }).length, 1, `job ${job.id}: one completed event`);
      assert.equal(logCounts[i], 2, `job ${job.id}: processor ran once (2 log lines)`);
      byWorker[job.processedBy] = (byWorker[job.processedBy] || 0) + 1;
    });
    assert.deepEqual(new Set(jobs.map((j) => j.id)), new Set(added.map((j) => j.id)));
    for (const w of fleet) assert.ok(byWorker[w.name] > 0, `${w.name} processed jobs: ${JSON.stringify(byWorker)}`);
    assert.equal(h.events.filter({ event: 'stalled' }).length, 0, 'no stalls');
  });
});
