'use strict';
// queue.pause() / queue.resume() from Node: nothing is claimed while paused (the job already
// running finishes), jobs added while paused wait, and everything runs after resume.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version, major } = require('../src/bullmq');

const redis = s.useRedis();

const waitingLike = (c) => c.wait + c.paused + c.prioritized + c.delayed;

describe(`pause and resume (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('a running job finishes, nothing else is claimed while paused, all run after resume', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const running = await h.queue.add('fetch-job', { ms: 800 });
    await h.waitForEvent((e) => e.event === 'active' && e.jobId === running.id, { message: 'first job active' });

    await h.queue.pause();
    assert.equal(await h.queue.isPaused(), true);
    const added = await h.queue.addBulk([
      ...Array.from({ length: 5 }, (_, i) => ({ name: 'fetch-job', data: { ms: 10, i } })),
      { name: 'fetch-job', data: { ms: 10 }, opts: { priority: 2 } },
      { name: 'fetch-job', data: { ms: 10 }, opts: { delay: 200 } },
    ]);
    await h.waitForEvent((e) => e.event === 'completed' && e.jobId === running.id, { message: 'the in-flight job to complete while paused' });
    await s.sleep(1500);

    const counts = await h.counts();
    assert.equal(counts.completed, 1, `only the in-flight job completed: ${JSON.stringify(counts)}`);
    assert.equal(counts.active, 0);
    assert.equal(waitingLike(counts), added.length, `all added jobs still waiting: ${JSON.stringify(counts)}`);
    if (major === 6) {
      // BullMQ 6 never writes the legacy `paused` list: even the delayed job the worker
      // promoted while paused stays in `wait`, where a v6 Queue counts it.
      assert.deepEqual(await h.db.lrange(h.key('paused'), 0, -1), [], 'nothing in the v5 paused list');
    }
    const pausedAt = h.events.filter({ event: 'paused' })[0].at;
    assert.deepEqual(h.events.filter({ event: 'active' }).filter((e) => e.at > pausedAt).map((e) => e.jobId), [], 'no active event while paused');

    await h.queue.resume();
    await h.waitForCounts({ completed: 1 + added.length }, { timeout: 10000 });
    const resumedAt = h.events.filter({ event: 'resumed' })[0].at;
    const activeIds = h.events.filter({ event: 'active' }).filter((e) => e.at >= resumedAt).map((e) => e.jobId).sort();
    assert.deepEqual(activeIds, added.map((j) => j.id).sort(), 'each job added while paused ran once after resume');
  });

  it('a job made ready while paused goes where the queue\'s major counts it (v5: paused, v6: wait)', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'noop' });
    await h.waitUntil(async () => (await h.queue.getWorkers()).length === 1, { message: 'worker up' });
    assert.match(await h.db.hget(h.key('meta'), 'version'), new RegExp(`^bullmq:${major}\\.`), 'the Queue wrote its version');
    await h.queue.pause();
    // Due while paused: the worker's claim promotes it to the ready list but does not take it.
    const job = await h.queue.add('fetch-job', {}, { delay: 300 });
    await h.waitForEvent((e) => e.event === 'waiting' && e.jobId === job.id && e.prev === 'delayed', { timeout: 10000, message: 'promotion while paused' });
    const [waitList, pausedList] = [await h.db.lrange(h.key('wait'), 0, -1), await h.db.lrange(h.key('paused'), 0, -1)];
    const counts = await h.queue.getJobCounts();
    if (major === 6) {
      assert.deepEqual([waitList, pausedList], [[job.id], []], 'v6: the job stays in wait');
      assert.equal(counts.waiting ?? counts.wait, 1, `a v6 Queue counts it as waiting: ${JSON.stringify(counts)}`);
    } else {
      assert.deepEqual([waitList, pausedList], [[], [job.id]], 'v5: the job goes to paused');
      assert.equal(counts.paused, 1, `a v5 Queue counts it as paused: ${JSON.stringify(counts)}`);
    }
    assert.equal(await (await h.job(job.id)).getState(), 'waiting', 'both majors report a paused-list job as waiting');
    assert.equal(h.events.filter({ event: 'active', jobId: job.id }).length, 0, 'not claimed while paused');
    await h.queue.resume();
    await h.waitForCounts({ completed: 1 }, { timeout: 10000 });
  });

  it('a worker started on an already paused queue waits for resume', async (t) => {
    const h = await s.setup(t, redis);
    await h.queue.pause();
    await h.queue.addBulk(Array.from({ length: 3 }, () => ({ name: 'fetch-job', data: {} })));
    h.startWorker({ processor: 'noop' });
    await h.waitUntil(async () => (await h.queue.getWorkers()).length === 1, { message: 'worker up' });
    await s.sleep(1200);
    assert.equal(h.events.filter({ event: 'active' }).length, 0, 'nothing claimed while paused');
    assert.equal((await h.counts()).completed, 0);
    await h.queue.resume();
    await h.waitForCounts({ completed: 3, wait: 0, paused: 0 }, { timeout: 10000 });
  });
});
