'use strict';
// removeOnComplete / removeOnFail, per job and as worker defaults (REMOVE_ON_COMPLETE /
// REMOVE_ON_FAIL): what is kept in Redis after jobs finish, by count and by age.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

/** Adds jobs one by one and waits for each to finish, so finish order = add order. */
async function runInOrder(h, specs) {
  const jobs = [];
  for (const spec of specs) {
    const job = await h.queue.add('fetch-job', spec.data, spec.opts);
    await h.waitForEvent((e) => (e.event === 'completed' || e.event === 'failed') && e.jobId === job.id, { message: `job ${job.id} to finish` });
    jobs.push(job);
  }
  return jobs;
}

const ok = (opts = {}) => ({ data: { succeedOnAttempt: 1 }, opts });
const fatal = (opts = {}) => ({ data: { message: 'fatal', fatal: true }, opts });

async function finishedIds(h, set) {
  return (await h.db.zrange(h.key(set), 0, -1)).sort((a, b) => a - b);
}

async function existing(h, jobs) {
  const out = [];
  for (const j of jobs) if (await h.db.exists(h.key(j.id))) out.push(j.id);
  return out;
}

describe(`retention (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('removeOnComplete: true deletes the job hash and logs, yet completed is still emitted with the value', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const [job] = await runInOrder(h, [{ data: { ms: 10 }, opts: { removeOnComplete: true } }]);
    const completed = h.events.filter({ event: 'completed', jobId: job.id })[0];
    assert.deepEqual(completed.returnvalue, { slept: 10 });
    assert.equal(await h.job(job.id), undefined, 'Job.fromId finds nothing');
    assert.equal(await h.db.exists(h.key(job.id), h.key(`${job.id}:logs`), h.key(`${job.id}:lock`)), 0, 'hash, logs and lock are gone');
    assert.deepEqual(await finishedIds(h, 'completed'), []);
    assert.equal((await h.counts()).completed, 0);
  });

  it('removeOnComplete: N keeps the newest N completed jobs', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const jobs = await runInOrder(h, Array.from({ length: 5 }, () => ok({ removeOnComplete: 2 })));
    assert.deepEqual(await finishedIds(h, 'completed'), [jobs[3].id, jobs[4].id]);
    assert.deepEqual(await existing(h, jobs), [jobs[3].id, jobs[4].id], 'older hashes deleted');
  });

  it('removeOnComplete: {age, count} trims by count and, when a later job finishes, by age', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const byCount = await runInOrder(h, Array.from({ length: 4 }, () => ok({ removeOnComplete: { age: 3600, count: 2 } })));
    assert.deepEqual(await finishedIds(h, 'completed'), [byCount[2].id, byCount[3].id], 'count applies');

    // An age of 3 s: the jobs above must all finish within it, even on a loaded machine.
    const byAge = await runInOrder(h, Array.from({ length: 2 }, () => ok({ removeOnComplete: { age: 3, count: 100 } })));
    assert.deepEqual(await finishedIds(h, 'completed'), [byCount[2].id, byCount[3].id, ...byAge.map((j) => j.id)],
      'nothing is old enough yet');
    await s.sleep(3200);
    const [last] = await runInOrder(h, [ok({ removeOnComplete: { age: 3, count: 100 } })]);
    assert.deepEqual(await finishedIds(h, 'completed'), [last.id], 'jobs finished more than 3 s earlier are removed');
    assert.deepEqual(await existing(h, [...byCount, ...byAge, last]), [last.id]);
  });

  it('removeOnComplete: {age, limit} removes the most recently finished expired jobs first', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const old = await runInOrder(h, Array.from({ length: 4 }, () => ok({ removeOnComplete: false })));
    await s.sleep(1200);
    const [first] = await runInOrder(h, [ok({ removeOnComplete: { age: 1, limit: 1 } })]);
    assert.deepEqual(await finishedIds(h, 'completed'), [old[0].id, old[1].id, old[2].id, first.id],
      'one removal per finish, the newest expired job (upstream order)');
    const [second] = await runInOrder(h, [ok({ removeOnComplete: { age: 1, limit: 2 } })]);
    assert.deepEqual(await finishedIds(h, 'completed'), [old[0].id, first.id, second.id]);
    assert.deepEqual(await existing(h, old), [old[0].id], 'the removed jobs\' hashes are gone');
  });

  it('removeOnFail: true and N trim the failed set; failed is still emitted', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const [gone] = await runInOrder(h, [fatal({ removeOnFail: true })]);
    assert.equal(h.events.filter({ event: 'failed', jobId: gone.id })[0].failedReason, 'fatal');
    assert.equal(await h.job(gone.id), undefined);
    assert.deepEqual(await finishedIds(h, 'failed'), []);

    const kept = await runInOrder(h, Array.from({ length: 3 }, () => fatal({ removeOnFail: 1 })));
    assert.deepEqual(await finishedIds(h, 'failed'), [kept[2].id]);
    assert.deepEqual(await existing(h, kept), [kept[2].id]);
  });

  it('worker defaults REMOVE_ON_COMPLETE / REMOVE_ON_FAIL apply to jobs without their own option', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail', env: { REMOVE_ON_COMPLETE: '2', REMOVE_ON_FAIL: 'true' } });
    const plain = await runInOrder(h, [ok(), ok(), ok(), ok()]);
    assert.deepEqual(await finishedIds(h, 'completed'), [plain[2].id, plain[3].id], 'worker default count 2');
    const [keepAll] = await runInOrder(h, [ok({ removeOnComplete: false })]);
    assert.deepEqual(await finishedIds(h, 'completed'), [plain[2].id, plain[3].id, keepAll.id], 'a job-level option wins over the worker default');

    const [failed] = await runInOrder(h, [fatal()]);
    assert.equal(await h.job(failed.id), undefined, 'worker default removeOnFail true');
    const [failedKept] = await runInOrder(h, [fatal({ removeOnFail: false })]);
    assert.deepEqual(await finishedIds(h, 'failed'), [failedKept.id]);
  });

  it('worker default as {"age":s,"count":n} JSON is accepted', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail', args: ['--remove-on-complete', '{"age":3600,"count":1}'] });
    const jobs = await runInOrder(h, [ok(), ok(), ok()]);
    assert.deepEqual(await finishedIds(h, 'completed'), [jobs[2].id]);
  });
});
