'use strict';
// Deduplication from Node producers, as the worker finalizes it: the `de:` key is released
// when its job finishes, and with `keepLastIfActive` the last job added while the owner was
// active (stored in `dn:`) is created and run once the owner finishes.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

describe(`deduplication (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('keepLastIfActive: the last job added while the owner ran is created and completes after it', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const dedup = { id: 'day-1', keepLastIfActive: true };
    const a = await h.queue.add('fetch-job', { ms: 600, v: 'A' }, { deduplication: dedup });
    await h.waitForEvent((e) => e.event === 'progress' && e.jobId === a.id, { message: 'A running' });
    await h.queue.add('fetch-job', { ms: 10, v: 'B' }, { deduplication: dedup });
    await h.queue.add('fetch-job', { ms: 10, v: 'C' }, { deduplication: dedup });
    assert.equal(await h.db.exists(h.key('dn:day-1')), 1, 'the producer stored the next job');
    assert.equal(await h.db.hget(h.key('dn:day-1'), 'data'), JSON.stringify({ ms: 10, v: 'C' }), 'C replaced B');

    await h.waitForCounts({ completed: 2 }, { timeout: 10000 });
    const completed = h.events.filter({ event: 'completed' }).map((e) => e.jobId);
    assert.equal(completed[0], a.id, 'A first');
    const cId = completed[1];
    assert.notEqual(cId, a.id);
    const cJob = await h.job(cId);
    assert.deepEqual(cJob.data, { ms: 10, v: 'C' }, 'then the last one added while A ran');
    assert.deepEqual(cJob.returnvalue, { slept: 10 });
    assert.equal(cJob.deduplicationId ?? cJob.debounceId, 'day-1');
    assert.deepEqual(h.events.namesFor(cId).filter((n) => n !== 'progress'), ['added', 'waiting', 'active', 'completed']);
    assert.ok(h.events.filter({ event: 'added', jobId: cId })[0].at <= h.events.filter({ event: 'completed', jobId: a.id })[0].at,
      'C is created as A finishes');
    const ids = await h.db.keys(h.key('*'));
    assert.equal(ids.filter((k) => /:\d+$/.test(k)).length, 2, `two job hashes, B never existed: ${ids}`);
    await h.waitUntil(async () => (await h.db.exists(h.key('dn:day-1'), h.key('de:day-1'))) === 0, { message: 'dn: and de: keys gone' });
    assert.equal((await h.counts()).completed, 2);
  });

  it('a plain deduplication key is released when its job finishes', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const a = await h.queue.add('fetch-job', { ms: 300 }, { deduplication: { id: 'x' } });
    const dup = await h.queue.add('fetch-job', { ms: 300 }, { deduplication: { id: 'x' } });
    assert.equal(dup.id, a.id, 'deduplicated while A exists');
    await s.withTimeout(a.waitUntilFinished(h.queueEvents), 10000, 'A to finish');
    assert.equal(await h.db.exists(h.key('de:x')), 0, 'the de: key is released');
    const again = await h.queue.add('fetch-job', { ms: 0 }, { deduplication: { id: 'x' } });
    assert.notEqual(again.id, a.id, 'a new job is accepted');
    await h.waitForCounts({ completed: 2 }, { timeout: 10000 });
  });
});
