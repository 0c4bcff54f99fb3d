'use strict';
// Checks that the floor (floor.js) is a fair floor: Node's Queue and QueueEvents see its
// jobs as they see a real worker's. bench/queue.sh runs it before any floor drain and stops
// when it fails; run it by hand with REDIS_URL=redis://127.0.0.1:PORT/DB (it uses fresh
// queue names and deletes nothing else).
//
// 1. One job, by hand with the floor's scripts: after the claim, Node sees it `active`, with
//    processedOn and attemptsStarted 1, locked for LOCK_MS; a finish with another token is
//    refused (-6) and changes nothing; the finish with the claim's token deletes it
//    (removeOnComplete) and its lock; QueueEvents hears active, completed (with the return
//    value) and drained, in that order.
// 2. floor.js itself in each mode (per job, split, batches) on 40 jobs: every job is heard
//    active then completed with its return value, the queue ends empty, and drained comes.

const assert = require('assert/strict');
const { execFile } = require('child_process');
const path = require('path');
const { promisify } = require('util');
const Redis = require('ioredis');
const { Queue, QueueEvents } = require('bullmq');
const { connection, required, fail } = require('./common');
const { CLAIM_LUA, FINISH_LUA, KEY_NAMES, LOCK_MS } = require('./floor');

const PREFIX = 'bull';
const OPTS = { attempts: 3, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: true };
const data = (k) => ({ branch: 'BMC', pos: (k % 12) + 1, date: '2026-02-01' });
const noopResult = (d) => ({ processed: true, echo: d });

async function until(what, test, ms = 5000) {
  const end = Date.now() + ms;
  while (!test()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// A queue with a listening QueueEvents; `heard` collects {event, jobId, returnvalue}.
async function openQueue(name) {
  const conn = connection();
  const queue = new Queue(name, { connection: conn, prefix: PREFIX });
  // From the stream's start: a QueueEvents reading from `$` may start its first read after
  // the first events (a busy machine), and miss them.
  const events = new QueueEvents(name, { connection: conn, prefix: PREFIX, lastEventId: '0-0' });
  await events.waitUntilReady();
  const heard = [];
  for (const event of ['active', 'completed', 'failed', 'drained']) {
    events.on(event, (args) => heard.push({ event, ...args }));
  }
  return { queue, events, heard };
}

async function counts(queue) {
  return queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
}
// (BullMQ 5 adds `paused` whenever `waiting` is asked for.)
const EMPTY = { waiting: 0, paused: 0, active: 0, completed: 0, failed: 0, delayed: 0 };

async function byHand(redis) {
  const name = `floor-check-${process.pid}-hand`;
  const { queue, events, heard } = await openQueue(name);
  const base = `${PREFIX}:${name}:`;
  const keys = KEY_NAMES.map((k) => base + k);
  const job = await queue.add('fetch-job', data(0), OPTS);

  const claimed = await redis.eval(CLAIM_LUA, keys.length, ...keys, base, Date.now(), 'w:1', LOCK_MS, 1);
  assert.equal(claimed.length, 1, 'one job claimed');
  assert.equal(claimed[0][0], job.id);
  const active = await queue.getJob(job.id);
  assert.equal(await active.getState(), 'active');
  assert.ok(active.processedOn > 0, 'processedOn set');
  assert.equal(active.attemptsStarted, 1);
  assert.deepEqual(active.data, data(0));
  assert.deepEqual(await counts(queue), { ...EMPTY, active: 1 });
  const pttl = await redis.pttl(`${base}${job.id}:lock`);
  assert.ok(pttl > 0 && pttl <= LOCK_MS, `lock with a TTL (${pttl})`);

  const value = JSON.stringify(noopResult(data(0)));
  const finish = (token) =>
    redis.eval(FINISH_LUA, keys.length, ...keys, base, Date.now(), token, LOCK_MS, 1, 1, job.id, value);
  const [refused] = await finish('w:2');
  assert.deepEqual(refused, [-6], 'another token cannot finish the job');
  assert.equal(await (await queue.getJob(job.id)).getState(), 'active');

  const [codes, next] = await finish('w:1');
  assert.deepEqual(codes, [0]);
  assert.deepEqual(next, [], 'nothing left to claim');
  assert.equal(await queue.getJob(job.id), undefined, 'removeOnComplete deleted the job');
  assert.equal(await redis.exists(`${base}${job.id}:lock`), 0, 'lock released');
  assert.deepEqual(await counts(queue), EMPTY);

  await until('drained', () => heard.some((h) => h.event === 'drained'));
  assert.deepEqual(heard.map((h) => h.event), ['active', 'completed', 'drained']);
  assert.deepEqual(heard[1].returnvalue, noopResult(data(0)));
  await events.close();
  await queue.close();
}

async function throughFloor(mode) {
  const jobs = 40;
  const name = `floor-check-${process.pid}-${mode.label}`;
  const { queue, events, heard } = await openQueue(name);
  await queue.addBulk(Array.from({ length: jobs }, (_, k) => ({ name: 'fetch-job', data: data(k), opts: OPTS })));
  await promisify(execFile)(process.execPath, [path.join(__dirname, 'floor.js')], {
    env: {
      ...process.env,
      QUEUE_NAME: name,
      BULL_PREFIX: PREFIX,
      N: String(jobs),
      CONCURRENCY: String(mode.concurrency),
      FLOOR_BATCH: String(mode.batch),
      FLOOR_SPLIT: mode.split ? '1' : '0',
    },
  });
  await until(`${mode.label}: drained`, () => heard.some((h) => h.event === 'drained'));
  await until(`${mode.label}: ${jobs} completed`, () => heard.filter((h) => h.event === 'completed').length >= jobs);
  assert.deepEqual(await counts(queue), EMPTY, `${mode.label}: queue empty`);
  const byJob = new Map();
  for (const h of heard) {
    if (h.jobId === undefined) continue;
    if (!byJob.has(h.jobId)) byJob.set(h.jobId, []);
    byJob.get(h.jobId).push(h);
  }
  assert.equal(byJob.size, jobs, `${mode.label}: every job heard`);
  for (const [id, list] of byJob) {
    assert.deepEqual(list.map((h) => h.event), ['active', 'completed'], `${mode.label}: job ${id}`);
    assert.equal(list[1].returnvalue.processed, true);
  }
  assert.equal(heard.filter((h) => h.event === 'failed').length, 0);
  await events.close();
  await queue.close();
}

async function main() {
  required('REDIS_URL');
  const redis = new Redis(connection());
  await byHand(redis);
  for (const mode of [
    { label: 'floor', concurrency: 4, batch: 1 },
    { label: 'floor2', concurrency: 4, batch: 1, split: true },
    { label: 'batch4', concurrency: 8, batch: 4 },
    { label: 'batch3', concurrency: 8, batch: 3 },
  ]) {
    await throughFloor(mode);
  }
  await redis.quit();
  process.stdout.write('floor check: ok\n');
}

main().then(
  () => process.exit(0),
  (err) => fail('floor_check.js', err),
);
