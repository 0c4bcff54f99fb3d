'use strict';
// The small CLIs Rust tests call: scripts/enqueue.js (adds jobs with the app's defaults) and
// scripts/wait.js (QueueEvents + waitUntilFinished), with their outputs and exit codes.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

const lines = (text) => text.split('\n').filter(Boolean);

describe(`CLIs (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('enqueue.js adds N jobs with the app defaults; wait.js reports their results', async (t) => {
    const h = await s.setup(t, redis);
    const enq = await s.runScript(h, 'enqueue.js', ['--count', '3']);
    assert.equal(enq.code, 0, enq.stderr);
    const ids = lines(enq.stdout);
    assert.equal(ids.length, 3);
    for (const [i, id] of ids.entries()) {
      const job = await h.job(id);
      assert.equal(job.name, 'fetch-job');
      assert.deepEqual(job.data, { seq: i });
      assert.equal(job.opts.attempts, 3);
      assert.deepEqual(job.opts.backoff, { type: 'exponential', delay: 1000 });
    }
    h.startWorker({ processor: 'noop' });
    const waited = await s.runScript(h, 'wait.js', ids.flatMap((id) => ['--job-id', id]));
    assert.equal(waited.code, 0, waited.stderr);
    assert.deepEqual(lines(waited.stdout).map((l) => JSON.parse(l)), ids.map((id, i) => ({
      jobId: id, status: 'completed', returnvalue: { processed: true, echo: { seq: i } },
    })));
  });

  it('enqueue.js takes a JSON spec (argument or stdin) and wait.js reads ids from stdin', async (t) => {
    const h = await s.setup(t, redis);
    const spec = [
      { name: 'fetch-job', data: { branch: 'B7', pos: 2, date: '2024-02-29' }, opts: { priority: 3, attempts: 1 } },
      { data: { message: 'nope', fatal: true } },
    ];
    const fromArg = await s.runScript(h, 'enqueue.js', ['--spec', JSON.stringify(spec[0])]);
    const fromStdin = await s.runScript(h, 'enqueue.js', ['--spec', '-'], { input: JSON.stringify([spec[1]]) });
    assert.equal(fromArg.code, 0, fromArg.stderr);
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    const [a, b] = [...lines(fromArg.stdout), ...lines(fromStdin.stdout)];
    assert.equal((await h.job(a)).opts.priority, 3);
    assert.equal((await h.job(a)).opts.attempts, 1, 'spec options override the defaults');
    assert.equal((await h.job(b)).opts.attempts, 3, 'defaults fill what the spec leaves out');

    h.startWorker({ processor: 'fail' });
    const waited = await s.runScript(h, 'wait.js', ['--stdin'], { input: `${a}\n${b}\n` });
    assert.equal(waited.code, 1, 'exit 1 when a job failed');
    assert.deepEqual(lines(waited.stdout).map((l) => JSON.parse(l)), [
      { jobId: a, status: 'failed', failedReason: 'failed by request' },
      { jobId: b, status: 'failed', failedReason: 'nope' },
    ]);
  });

  it('wait.js exits 3 on timeout, 1 for an unknown job, 2 on bad arguments', async (t) => {
    const h = await s.setup(t, redis);
    const [late] = lines((await s.runScript(h, 'enqueue.js', ['--opts', '{"delay":60000}'])).stdout);
    const timedOut = await s.runScript(h, 'wait.js', ['--job-id', late, '--timeout', '500']);
    assert.equal(timedOut.code, 3, timedOut.stderr);
    assert.match(timedOut.stderr, /timed out/);
    const missing = await s.runScript(h, 'wait.js', ['--job-id', 'no-such-job']);
    assert.equal(missing.code, 1);
    assert.deepEqual(JSON.parse(missing.stdout), { jobId: 'no-such-job', status: 'missing' });
    assert.equal((await s.runScript(h, 'wait.js', [])).code, 2);
    assert.equal((await s.runScript(h, 'enqueue.js', ['--count', 'x'])).code, 2);
  });
});
