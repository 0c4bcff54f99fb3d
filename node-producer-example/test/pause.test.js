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
      // A v6 producer leaves jobs added while paused in `wait`. Only the delayed job may sit in
      // the legacy `paused` list: the worker promotes it while paused, and a worker following the
      // v5 rule (protocol notes §10) pushes it there; v6 resume drains that list back into wait.
      const pausedList = await h.db.lrange(h.key('paused'), 0, -1);
      const delayedId = added.at(-1).id;
      assert.ok(pausedList.every((id) => id === delayedId), `only the promoted delayed job may be in paused: ${pausedList}`);
    }
    const pausedAt = h.events.filter({ event: 'paused' })[0].at;
    assert.deepEqual(h.events.filter({ event: 'active' }).filter((e) => e.at > pausedAt).map((e) => e.jobId), [], 'no active event while paused');

    await h.queue.resume();
    await h.waitForCounts({ completed: 1 + added.length }, { timeout: 10000 });
    const resumedAt = h.events.filter({ event: 'resumed' })[0].at;
    const activeIds = h.events.filter({ event: 'active' }).filter((e) => e.at >= resumedAt).map((e) => e.jobId).sort();
    assert.deepEqual(activeIds, added.map((j) => j.id).sort(), 'each job added while paused ran once after resume');
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
