'use strict';
// The worker rate limiter (RATE_LIMIT_MAX / RATE_LIMIT_DURATION_MS, Node's Worker `limiter`):
// jobs start at most `max` per `duration`, counted in the queue's `limiter` key, so a worker
// of ours and a Node worker limiting the same queue share one budget.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

const LIMIT = { RATE_LIMIT_MAX: '2', RATE_LIMIT_DURATION_MS: '1000' };

/** Start times (stream ms) of every `active` event, in order. */
const starts = (h) => h.events.filter({ event: 'active' }).map((e) => e.at).sort((a, b) => a - b);

/** Asserts that no `max + 1` starts fall within one window (with 50 ms of clock slack). */
function assertWithinLimit(times, max, windowMs) {
  for (let i = 0; i + max < times.length; i++) {
    const span = times[i + max] - times[i];
    assert.ok(span >= windowMs - 50, `starts ${i}..${i + max} within ${span} ms: ${max + 1} jobs in one ${windowMs} ms window (${times.join(', ')})`);
  }
}

describe(`worker rate limiter (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('RATE_LIMIT_MAX=2 per 1000 ms: six jobs start two per window', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'noop', env: LIMIT });
    await h.queue.addBulk(Array.from({ length: 6 }, (_, i) => ({ name: 'fetch-job', data: { i } })));
    await h.waitForCounts({ completed: 6 }, { timeout: 15000 });
    assertWithinLimit(starts(h), 2, 1000);
    assert.equal(h.events.filter({ event: 'failed' }).length, 0);
  });

  it('the limit is shared with a Node worker limiting the same queue', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'noop', env: LIMIT, name: 'ours' });
    h.startWorker({ processor: 'noop', env: LIMIT, kind: 'node', name: 'node' });
    await h.waitUntil(async () => (await h.queue.getWorkers()).length === 2, { message: 'both workers up' });
    const jobs = await h.queue.addBulk(Array.from({ length: 8 }, (_, i) => ({ name: 'fetch-job', data: { i } })));
    await h.waitForCounts({ completed: 8 }, { timeout: 20000 });
    assertWithinLimit(starts(h), 2, 1000);
    const by = new Set();
    for (const j of jobs) by.add((await h.job(j.id)).processedBy);
    assert.ok(by.size >= 1, 'processed');
  });
});

describe(`processor rate limit, worker.rateLimit + RateLimitError (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('data.rateLimitMs limits the queue and hands the job back without an attempt; nothing starts until the limit ends', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const [limiting, other] = await h.queue.addBulk([
      { name: 'fetch-job', data: { ms: 10, rateLimitMs: 1000 } },
      { name: 'fetch-job', data: { ms: 10 } },
    ]);

    // Handed back: to the front of wait, the queue's limiter set as Node's rateLimit sets it.
    const back = await h.waitForEvent((e) => e.event === 'waiting' && e.jobId === limiting.id && e.prev === 'active', {
      message: 'the job handed back to wait',
    });
    assert.equal(await h.db.get(h.key('limiter')), '9007199254740991', 'limiter key holds MAX_SAFE_INTEGER');
    const ttl = await h.db.pttl(h.key('limiter'));
    assert.ok(ttl > 0 && ttl <= 1000, `limiter expires within the limit (pttl ${ttl})`);

    await h.waitForCounts({ completed: 2 }, { timeout: 15000 });
    await h.waitUntil(() => h.events.filter({ event: 'completed' }).length === 2, { message: 'both completed events' });
    const firstStart = h.events.filter({ event: 'active', jobId: limiting.id })[0].at;
    // Stream order, not time: a fast worker hands back in the millisecond it started the job.
    const later = h.events.entries.slice(h.events.entries.indexOf(back) + 1).filter((e) => e.event === 'active');
    assert.equal(later.length, 2, 'both jobs started after the hand-back');
    for (const e of later) {
      assert.ok(e.at >= firstStart + 1000 - 50, `job ${e.jobId} started at +${e.at - firstStart} ms, inside the 1000 ms limit`);
    }
    assert.deepEqual(h.events.filter({ event: 'completed' }).map((e) => e.jobId), [limiting.id, other.id], 'the handed-back job runs first');
    const done = await h.job(limiting.id);
    assert.equal(done.attemptsMade, 1, 'the limited run used no attempt');
    assert.equal(done.attemptsStarted, 2);
    assert.ok(!done.failedReason);
    assert.deepEqual(done.returnvalue, { slept: 10 });
    assert.equal(h.events.filter({ event: 'failed' }).length, 0);
    assert.deepEqual(
      h.events.namesFor(limiting.id).filter((n) => n !== 'progress'),
      ['added', 'waiting', 'active', 'waiting', 'active', 'completed'],
    );
  });
});
