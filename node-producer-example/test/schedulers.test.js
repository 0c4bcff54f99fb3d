'use strict';
// Job schedulers (`Queue.upsertJobScheduler`) and BullMQ 5's repeatable jobs (`add` with
// `repeat`): a worker that claims an iteration adds the next one before running it, so a
// schedule keeps going, stops at its `limit` or `endDate`, and counts its iterations (`ic`).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { major, version } = require('../src/bullmq');

const redis = s.useRedis();

/** `repeat:<id>:<ms>` → ms. */
const millisOf = (jobId) => Number(String(jobId).split(':').pop());

/** Ids of completed jobs, in completion order. */
const completedIds = (h) => h.events.filter({ event: 'completed' }).map((e) => e.jobId);

/** Stops the test's workers, so the queue holds still for the assertions. */
async function stopWorkers(h) {
  for (const w of h.workers) await w.stop('SIGTERM');
}

/** Jobs still to run: waiting, delayed, prioritized or active. */
async function pending(h) {
  const c = await h.counts();
  return c.wait + c.paused + c.delayed + c.prioritized + c.active;
}

/**
 * Asserts that `next` is the first slot of an every: 400 schedule (slots `prev + k * 400`)
 * not before `claimedAt`, the time its predecessor was claimed (the next run is computed
 * right after the claim, so a few ms of slack).
 */
function assertFirstSlotAfter(next, prev, claimedAt) {
  assert.equal((next - prev) % 400, 0, `${next} is on the slots of ${prev}`);
  assert.ok(next > prev, `${next} after ${prev}`);
  assert.ok(next + 20 >= claimedAt, `${next} is not before the claim at ${claimedAt}`);
  assert.ok(next - 400 <= claimedAt + 200, `${next} is the first slot after the claim at ${claimedAt}`);
}

describe(`job schedulers (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('an every: 400 scheduler keeps running: each claimed iteration adds the next one', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'noop' });
    await h.queue.upsertJobScheduler('tick', { every: 400 }, { name: 'fetch-job', data: { x: 1 }, opts: { attempts: 2 } });
    await h.waitUntil(() => completedIds(h).length >= 5, { timeout: 15000, message: 'five iterations completed' });
    await stopWorkers(h);

    const done = completedIds(h);
    const offset = millisOf(done[0]) % 400;
    for (const id of done) {
      assert.match(id, /^repeat:tick:\d+$/);
      assert.equal(millisOf(id) % 400, offset, `${id} keeps the scheduler's slots`);
      const job = await h.job(id);
      assert.equal(job.name, 'fetch-job');
      assert.deepEqual(job.data, { x: 1 }, 'template data');
      assert.equal(job.repeatJobKey, 'tick');
      assert.equal(job.opts.attempts, 2, 'template options');
      assert.deepEqual(job.returnvalue, { processed: true, echo: { x: 1 } });
    }
    const counts = done.map(async (id) => (await h.job(id)).opts.repeat.count);
    assert.deepEqual(await Promise.all(counts), done.map((_, i) => i + 1), 'repeat.count numbers the iterations');

    // The iteration after the last completed one is waiting for its time, and the scheduler
    // points at it and counts every iteration made.
    const scheduler = await h.queue.getJobScheduler('tick');
    assert.ok(scheduler.next > Math.max(...done.map(millisOf)), `next ${scheduler.next} is after every completed run`);
    const nextId = `repeat:tick:${scheduler.next}`;
    const next = await h.job(nextId);
    assert.ok(next, `${nextId} exists`);
    assert.ok(['delayed', 'waiting'].includes(await next.getState()), 'the next iteration is pending');
    assert.equal(next.opts.repeat.count, done.length + 1);
    assert.equal(scheduler.iterationCount, done.length + 1, 'ic counts every iteration made');
    assert.equal(await pending(h), 1, 'exactly one iteration pending');
    for (const [i, id] of done.slice(0, -1).entries()) {
      const job = await h.db.hget(h.key(id), 'nrjid');
      // BullMQ 5 records the next iteration's id on the job that produced it; 6 does not.
      assert.equal(job, major === 5 ? done[i + 1] : null, `nrjid of ${id}`);
    }
    const second = done[1];
    assert.deepEqual(
      h.events.namesFor(second),
      ['added', 'delayed', 'waiting', 'active', 'completed'],
      'an iteration is added delayed, promoted, run',
    );
  });

  it('the next iteration exists while the current one runs, and missed slots are skipped', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    await h.queue.upsertJobScheduler('slow', { every: 400 }, { name: 'fetch-job', data: { ms: 1200 } });
    const first = await h.waitForEvent((e) => e.event === 'active', { message: 'first iteration active' });
    await h.waitUntil(async () => (await h.db.zcard(h.key('delayed'))) === 1, { message: 'next iteration added while the first runs' });
    const [nextId] = await h.db.zrange(h.key('delayed'), 0, -1);
    assertFirstSlotAfter(millisOf(nextId), millisOf(first.jobId), first.at);
    assert.equal(await (await h.job(first.jobId)).getState(), 'active', 'added before the first iteration finished');

    await h.waitUntil(() => completedIds(h).length >= 2, { timeout: 15000, message: 'two iterations completed' });
    await stopWorkers(h);
    const [, two] = completedIds(h);
    // The second iteration was claimed about 800 ms late (the first ran 1200 ms): the third is
    // the first slot after that claim, not the slot right after the second.
    // (The worker may have run more before it stopped: the third is the one added at two's claim.)
    const claimedTwo = h.events.filter({ event: 'active', jobId: two })[0].at;
    const added = h.events.filter({ event: 'added' }).filter((e) => e.at >= claimedTwo);
    const third = millisOf(added[0].jobId);
    assertFirstSlotAfter(third, millisOf(two), claimedTwo);
    assert.ok(third > millisOf(two) + 400, 'missed slots are skipped');
  });

  it('a cron pattern with a seconds field and a tz runs each second', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'noop' });
    await h.queue.upsertJobScheduler('each-second', { pattern: '*/1 * * * * *', tz: 'Asia/Manila' }, { name: 'fetch-job', data: { c: 1 } });
    await h.waitUntil(() => completedIds(h).length >= 3, { timeout: 15000, message: 'three iterations completed' });
    await stopWorkers(h);
    const done = completedIds(h).map(millisOf);
    for (const ms of done) assert.equal(ms % 1000, 0, `${ms} is on a whole second`);
    for (let i = 1; i < done.length; i++) assert.ok(done[i] > done[i - 1], 'strictly later each time');
    const scheduler = await h.queue.getJobScheduler('each-second');
    assert.equal(scheduler.next % 1000, 0);
    assert.ok(scheduler.next > Math.max(...done));
    const next = await h.job(`repeat:each-second:${scheduler.next}`);
    assert.equal(next.opts.prevMillis, scheduler.next, 'pattern iterations carry prevMillis');
    assert.equal(next.opts.repeat.tz, 'Asia/Manila');
    assert.equal(scheduler.iterationCount, done.length + 1);
  });

  it('a daily cron pattern in a time zone schedules the next run at that local time', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'noop' });
    // Runs once now (immediately), then at 06:00 Manila time (22:00 UTC).
    await h.queue.upsertJobScheduler('nightly', { pattern: '0 0 6 * * *', tz: 'Asia/Manila', immediately: true }, { name: 'fetch-job', data: {} });
    await h.waitUntil(() => completedIds(h).length >= 1, { timeout: 10000, message: 'the immediate run' });
    await h.waitUntil(async () => (await h.db.zcard(h.key('delayed'))) === 1, { message: 'the next run scheduled' });
    await stopWorkers(h);
    const scheduler = await h.queue.getJobScheduler('nightly');
    const at = new Date(scheduler.next);
    assert.equal(at.getUTCHours(), 22);
    assert.equal(at.getUTCMinutes() + at.getUTCSeconds() + at.getUTCMilliseconds(), 0);
    assert.ok(scheduler.next > Date.now() && scheduler.next <= Date.now() + 86400000, 'within a day');
  });

  it('limit: 3 stops after three iterations; endDate stops the every schedule', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'noop' });
    await h.queue.upsertJobScheduler('three', { pattern: '*/1 * * * * *', limit: 3 }, { name: 'fetch-job', data: {} });
    const endDate = Date.now() + 1500;
    await h.queue.upsertJobScheduler('until', { every: 300, endDate }, { name: 'fetch-job', data: {} });
    const ofScheduler = (id) => completedIds(h).filter((j) => j.startsWith(`repeat:${id}:`));
    await h.waitUntil(async () => ofScheduler('three').length === 3 && Date.now() > endDate + 700 && (await pending(h)) === 0, {
      timeout: 15000, message: 'both schedules over',
    });
    await s.sleep(1200);
    assert.equal(ofScheduler('three').length, 3, 'no fourth iteration');
    assert.equal(await pending(h), 0, 'nothing left to run');
    const three = await h.queue.getJobScheduler('three');
    assert.equal(three.iterationCount, 3);
    assert.equal(three.next, Math.max(...ofScheduler('three').map(millisOf)), 'next still names the last run');
    const until = ofScheduler('until');
    assert.ok(until.length >= 2, `ran until the end date (${until.length} runs)`);
    for (const id of until) {
      const job = await h.job(id);
      assert.ok(job.timestamp <= endDate, `${id} was made before the end date`);
    }
  });
});

describe(`job schedulers shared with Node's worker (bullmq ${version})`, () => {
  it('ours, then a Node worker, then ours again carry one schedule on without a break', async (t) => {
    const h = await s.setup(t, redis);
    await h.queue.upsertJobScheduler('relay', { every: 300 }, { name: 'fetch-job', data: { r: 1 } });
    const by = {};
    for (const [leg, kind] of [[1, 'rust'], [2, 'node'], [3, 'rust']]) {
      const before = completedIds(h).length;
      const w = h.startWorker({ processor: 'noop', kind, name: `${kind}-${leg}` });
      await h.waitUntil(() => completedIds(h).length >= before + 3, { timeout: 15000, message: `leg ${leg} (${kind}) ran three iterations` });
      await w.stop('SIGTERM');
      for (const id of completedIds(h).slice(before)) by[id] = (await h.job(id)).processedBy;
    }
    const done = completedIds(h);
    for (let i = 1; i < done.length; i++) {
      assert.ok(millisOf(done[i]) > millisOf(done[i - 1]), 'each iteration later than the one before');
      assert.equal((millisOf(done[i]) - millisOf(done[0])) % 300, 0, 'all on the scheduler slots');
    }
    const workers = new Set(Object.values(by));
    assert.ok(workers.has('rust-1') && workers.has('node-2') && workers.has('rust-3'), `each leg ran iterations: ${JSON.stringify(by)}`);
    const scheduler = await h.queue.getJobScheduler('relay');
    assert.equal(scheduler.iterationCount, done.length + 1, 'ic counts every iteration, whoever made it');
    assert.equal(await pending(h), 1, 'the next iteration is pending');
    assert.ok(scheduler.next > Math.max(...done.map(millisOf)));
  });
});

describe(`repeatable jobs, add with repeat (worker=${s.WORKER}, bullmq ${version})`, () => {
  if (major === 5) {
    it('BullMQ 5: add(..., {repeat: {every}}) and {repeat: {pattern}} keep repeating', async (t) => {
      const h = await s.setup(t, redis);
      h.startWorker({ processor: 'noop' });
      await h.queue.add('fetch-job', { r: 1 }, { repeat: { every: 500 } });
      await h.queue.add('fetch-job', { r: 2 }, { repeat: { pattern: '*/1 * * * * *' } });
      const byData = async (r) => {
        const out = [];
        for (const id of completedIds(h)) if ((await h.job(id)).data.r === r) out.push(id);
        return out;
      };
      await h.waitUntil(async () => (await byData(1)).length >= 3 && (await byData(2)).length >= 2, {
        timeout: 15000, message: 'both repeatable jobs ran repeatedly',
      });
      await stopWorkers(h);
      const repeatables = await h.queue.getRepeatableJobs();
      assert.equal(repeatables.length, 2);
      for (const r of [1, 2]) {
        const done = await byData(r);
        const key = (await h.job(done[0])).repeatJobKey;
        const meta = repeatables.find((x) => x.key === key);
        assert.ok(meta, `repeatable ${key} listed`);
        assert.ok(meta.next > Math.max(...done.map(millisOf)), 'next is after every completed run');
        assert.ok(await h.job(`repeat:${key}:${meta.next}`), 'the next iteration exists');
        for (const id of done) assert.match(id, new RegExp(`^repeat:${key}:\\d+$`));
      }
    });
  } else {
    it('BullMQ 6: add(..., {repeat}) is a plain job that runs once', async (t) => {
      const h = await s.setup(t, redis);
      h.startWorker({ processor: 'noop' });
      const job = await h.queue.add('fetch-job', { r: 1 }, { repeat: { every: 300 } });
      await h.waitForCounts({ completed: 1 }, { timeout: 10000 });
      await s.sleep(1000);
      assert.deepEqual(completedIds(h), [job.id]);
      assert.equal(await pending(h), 0);
      assert.equal(await h.db.zcard(h.key('repeat')), 0);
    });
  }
});
