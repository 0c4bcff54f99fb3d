'use strict';
// Progress and logs written by the worker, read the way Node and Bull Board read them:
// `progress` events on QueueEvents, `job.progress`, `queue.getJobLogs`.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

describe(`progress and logs (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('progress goes 0 → 100 in steps, visible mid-job through Job and QueueEvents; logs bracket the work', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const job = await h.queue.add('fetch-job', { ms: 1000 });

    // Mid-job: a progress strictly between 0 and 100 is readable from the job hash,
    // and the start log line is already there.
    const mid = await h.waitForEvent((e) => e.event === 'progress' && e.jobId === job.id && e.data > 0 && e.data < 100, { message: 'an intermediate progress event' });
    const running = await h.job(job.id);
    assert.equal(typeof running.progress, 'number');
    assert.ok(running.progress >= mid.data && running.progress <= 100, `job.progress ${running.progress} >= last seen ${mid.data}`);
    assert.equal(await running.getState(), 'active');
    const early = await h.queue.getJobLogs(job.id);
    assert.deepEqual(early.logs[0], 'sleeping 1000 ms');

    const returned = await s.withTimeout(job.waitUntilFinished(h.queueEvents), 10000, 'waitUntilFinished');
    assert.deepEqual(returned, { slept: 1000 });

    const values = h.events.filter({ event: 'progress', jobId: job.id }).map((e) => e.data);
    assert.ok(values.every((v) => typeof v === 'number' && v >= 0 && v <= 100), `numbers in 0..100: ${values}`);
    assert.equal(values[0], 0, `starts at 0: ${values}`);
    assert.equal(values.at(-1), 100, `ends at 100: ${values}`);
    assert.ok(values.every((v, i) => i === 0 || v >= values[i - 1]), `never goes back: ${values}`);
    assert.ok(new Set(values).size >= 5, `reported in steps (~every 10%): ${values}`);
    const completedAt = h.events.filter({ event: 'completed', jobId: job.id })[0].at;
    assert.ok(h.events.filter({ event: 'progress', jobId: job.id }).every((e) => e.at <= completedAt), 'all progress before completed');

    const done = await h.job(job.id);
    assert.equal(done.progress, 100);
    assert.equal(await h.db.hget(h.key(job.id), 'progress'), '100', 'stored as JSON text');
    assert.deepEqual(await h.queue.getJobLogs(job.id), { logs: ['sleeping 1000 ms', 'slept 1000 ms'], count: 2 });
  });

  it('without data.ms the sleep processor sleeps 0 ms and still reports 0 and 100', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const job = await h.queue.add('fetch-job', { unrelated: true });
    assert.deepEqual(await s.withTimeout(job.waitUntilFinished(h.queueEvents), 10000, 'waitUntilFinished'), { slept: 0 });
    const values = h.events.filter({ event: 'progress', jobId: job.id }).map((e) => e.data);
    assert.equal(values[0], 0);
    assert.equal(values.at(-1), 100);
    assert.deepEqual(await h.queue.getJobLogs(job.id), { logs: ['sleeping 0 ms', 'slept 0 ms'], count: 2 });
    assert.equal((await h.job(job.id)).progress, 100);
  });

  it('logs can be paged like Bull Board does (start/end, newest first)', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const job = await h.queue.add('fetch-job', { ms: 20 });
    await s.withTimeout(job.waitUntilFinished(h.queueEvents), 10000, 'waitUntilFinished');
    assert.deepEqual(await h.queue.getJobLogs(job.id, 0, 0), { logs: ['sleeping 20 ms'], count: 2 });
    assert.deepEqual(await h.queue.getJobLogs(job.id, 0, 0, false), { logs: ['slept 20 ms'], count: 2 });
    assert.equal(await h.db.llen(h.key(`${job.id}:logs`)), 2);
  });

  it('keepLogs trims the log list to the newest lines', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const job = await h.queue.add('fetch-job', { ms: 5 }, { keepLogs: 1 });
    await s.withTimeout(job.waitUntilFinished(h.queueEvents), 10000, 'waitUntilFinished');
    assert.deepEqual(await h.queue.getJobLogs(job.id), { logs: ['slept 5 ms'], count: 1 });
  });
});
