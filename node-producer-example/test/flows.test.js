'use strict';
// Flows (parent and child jobs) as a Node FlowProducer builds them: a child that finishes on
// our worker updates its parent exactly as on a Node Worker (5.81 and 6.x): its return value
// lands in the parent's `processed`, the last one releases the parent from waiting-children,
// each failure flag (fail / continue / ignore / remove) has upstream's effect, retention that
// deletes a failed child frees its parent, and a processor can park its own job until its
// children are done (moveToWaitingChildren) and read their values (getChildrenValues).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version, major } = require('../src/bullmq');

const redis = s.useRedis();

/** A job's event names without `progress` (the sleep processor reports many). */
const lifecycle = (h, id) => h.events.namesFor(id).filter((n) => n !== 'progress');

/** A FlowProducer on the test's Redis, closed after the test. */
function flowProducer(t, h) {
  const producer = new h.bullmq.FlowProducer({ connection: h.db.options, prefix: s.PREFIX });
  producer.on('error', () => {});
  t.after(() => producer.close());
  return producer;
}

/** Runs a plain job through the same worker and waits for it: everything queued before it has been handled. */
async function barrier(h, data) {
  const job = await h.queue.add('barrier', data);
  await h.waitForEvent((e) => ['completed', 'failed'].includes(e.event) && e.jobId === job.id, { timeout: 15000, message: `barrier job ${job.id} finished` });
}

/** The state and failure of a flow's parent once it finished, with what Redis keeps about its children. */
async function finishedParent(h, id) {
  const finished = await h.waitForEvent((e) => ['completed', 'failed'].includes(e.event) && e.jobId === id, { timeout: 15000, message: `parent ${id} finished` });
  const job = await h.job(id);
  return {
    event: finished,
    job,
    state: await job.getState(),
    dependencies: await h.db.smembers(h.key(`${id}:dependencies`)),
    processed: await job.getChildrenValues(),
    ignored: await job.getIgnoredChildrenFailures(),
    unsuccessful: await h.db.zrange(h.key(`${id}:unsuccessful`), 0, -1),
  };
}

/**
 * One flow whose child completes and one whose child fails with failParentOnFailure, the
 * parents worked by `parentsKind` and the children (another queue) by `kidsKind`: the values
 * and the deferred failure one kind of worker writes are read by the other.
 */
async function mixedFlows(t, h, parentsKind, kidsKind) {
  const kidsQueue = `${h.queueName}-kids`;
  h.startWorker({ processor: 'fail', kind: parentsKind, name: `${parentsKind}-parents` });
  h.startWorker({ processor: 'fail', kind: kidsKind, queueName: kidsQueue, name: `${kidsKind}-kids` });
  const producer = flowProducer(t, h);
  const good = await producer.add({
    name: 'parent',
    queueName: h.queueName,
    data: { succeedOnAttempt: 1 },
    children: [{ name: 'ok', queueName: kidsQueue, data: { succeedOnAttempt: 1 } }],
  });
  const bad = await producer.add({
    name: 'parent',
    queueName: h.queueName,
    data: { succeedOnAttempt: 1 },
    children: [{ name: 'bad', queueName: kidsQueue, data: { fatal: true, message: 'child broke' }, opts: { failParentOnFailure: true } }],
  });
  const kidKey = (flow) => `${s.PREFIX}:${kidsQueue}:${flow.children[0].job.id}`;
  const g = await finishedParent(h, good.job.id);
  assert.equal(g.state, 'completed');
  assert.deepEqual(g.processed, { [kidKey(good)]: { succeededOnAttempt: 1 } });
  const b = await finishedParent(h, bad.job.id);
  assert.equal(b.state, 'failed');
  assert.equal(b.job.failedReason, `child ${kidKey(bad)} failed`);
  assert.deepEqual(b.unsuccessful, [kidKey(bad)]);
}

describe(`flows (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('a parent with two children completes once both did, with their values in getChildrenValues', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const flow = await flowProducer(t, h).add({
      name: 'parent',
      queueName: h.queueName,
      data: { ms: 0, returnChildren: true },
      children: [
        { name: 'child', queueName: h.queueName, data: { ms: 30 } },
        { name: 'child', queueName: h.queueName, data: { ms: 10 } },
      ],
    });
    const parentId = flow.job.id;
    const [a, b] = flow.children.map((c) => c.job.id);
    const expected = { [h.key(a)]: { slept: 30 }, [h.key(b)]: { slept: 10 } };

    const returned = await s.withTimeout(flow.job.waitUntilFinished(h.queueEvents), 15000, 'parent waitUntilFinished');
    assert.deepEqual(returned, { slept: 0, children: expected }, 'the processor read the children\'s values');
    const p = await finishedParent(h, parentId);
    assert.equal(p.state, 'completed');
    assert.deepEqual(p.processed, expected);
    assert.deepEqual(p.dependencies, []);
    assert.equal(await h.db.zscore(h.key('waiting-children'), parentId), null);

    // Released once, by the last child, and only then run.
    const released = h.events.filter({ event: 'waiting', jobId: parentId });
    assert.equal(released.length, 1);
    assert.equal(released[0].prev, 'waiting-children');
    assert.deepEqual(lifecycle(h, parentId).slice(-3), ['waiting', 'active', 'completed']);
    const childDone = [a, b].map((id) => h.events.filter({ event: 'completed', jobId: id })[0]);
    const firstChildDone = childDone.reduce((x, y) => (x.streamId < y.streamId ? x : y));
    assert.ok(released[0].at >= firstChildDone.at && h.events.filter({ event: 'active', jobId: parentId })[0].at >= released[0].at);
    for (const id of [a, b]) assert.equal(await (await h.job(id)).getState(), 'completed');
  });

  it('children in another queue under another prefix release their parent there', async (t) => {
    const h = await s.setup(t, redis);
    const kidsQueue = `${h.queueName}-kids`;
    h.startWorker({ processor: 'sleep' });
    h.startWorker({ processor: 'sleep', queueName: kidsQueue, env: { BULL_PREFIX: 'alt' } });
    const flow = await flowProducer(t, h).add({
      name: 'parent',
      queueName: h.queueName,
      data: { ms: 0, returnChildren: true },
      children: [
        { name: 'child', queueName: kidsQueue, prefix: 'alt', data: { ms: 5 } },
        { name: 'child', queueName: kidsQueue, prefix: 'alt', data: { ms: 15 } },
      ],
    });
    const parentId = flow.job.id;
    const expected = Object.fromEntries(flow.children.map((c) => [`alt:${kidsQueue}:${c.job.id}`, { slept: c.job.data.ms }]));
    const p = await finishedParent(h, parentId);
    assert.equal(p.state, 'completed');
    assert.deepEqual(p.job.returnvalue, { slept: 0, children: expected });
    assert.deepEqual(p.processed, expected);
    const released = h.events.filter({ event: 'waiting', jobId: parentId });
    assert.deepEqual(released.map((e) => e.prev), ['waiting-children'], 'the waiting event is on the parent\'s own stream');
    for (const c of flow.children) {
      assert.equal(await h.db.hget(`alt:${kidsQueue}:${c.job.id}`, 'returnvalue'), JSON.stringify({ slept: c.job.data.ms }));
      assert.equal(await h.db.zscore(`alt:${kidsQueue}:completed`, c.job.id) !== null, true);
    }
  });

  it('a parent released while its queue is paused goes where that major counts it (v5: paused, v6: wait)', async (t) => {
    const h = await s.setup(t, redis);
    const kidsQueue = `${h.queueName}-kids`;
    await h.queue.pause();
    assert.match(await h.db.hget(h.key('meta'), 'version'), new RegExp(`^bullmq:${major}\\.`), 'the Queue wrote its version');
    h.startWorker({ processor: 'sleep', queueName: kidsQueue });
    const flow = await flowProducer(t, h).add({
      name: 'parent',
      queueName: h.queueName,
      data: { ms: 0, returnChildren: true },
      children: [{ name: 'child', queueName: kidsQueue, data: { ms: 0 } }],
    });
    const parentId = flow.job.id;
    const released = await h.waitForEvent((e) => e.event === 'waiting' && e.jobId === parentId, { timeout: 15000, message: 'parent released' });
    assert.equal(released.prev, 'waiting-children');
    const [waitList, pausedList] = [await h.db.lrange(h.key('wait'), 0, -1), await h.db.lrange(h.key('paused'), 0, -1)];
    if (major === 6) {
      assert.deepEqual([waitList, pausedList], [[parentId], []], 'v6: wait, never the legacy paused list');
    } else {
      assert.deepEqual([waitList, pausedList], [[], [parentId]], 'v5: the paused list');
    }
    assert.equal(await h.db.zscore(h.key('marker'), '0'), null, 'no wake marker while paused');
    const counts = await h.queue.getJobCounts('wait', 'paused', 'waiting-children');
    assert.equal(counts.wait + counts.paused, 1, `the parent is counted as waiting: ${JSON.stringify(counts)}`);
    assert.equal(counts['waiting-children'], 0);

    await h.queue.resume();
    h.startWorker({ processor: 'sleep' });
    const p = await finishedParent(h, parentId);
    assert.equal(p.state, 'completed');
    assert.deepEqual(p.job.returnvalue, { slept: 0, children: { [`${s.PREFIX}:${kidsQueue}:${flow.children[0].job.id}`]: { slept: 0 } } });
  });

  it('failParentOnFailure: the child\'s failure fails the parent lazily with upstream\'s reason', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const flow = await flowProducer(t, h).add({
      name: 'parent',
      queueName: h.queueName,
      data: { succeedOnAttempt: 1 },
      opts: { attempts: 3 },
      children: [{ name: 'child', queueName: h.queueName, data: { fatal: true, message: 'child broke' }, opts: { failParentOnFailure: true } }],
    });
    const parentId = flow.job.id;
    const childKey = h.key(flow.children[0].job.id);
    const p = await finishedParent(h, parentId);
    const reason = `child ${childKey} failed`;
    assert.equal(p.state, 'failed');
    assert.equal(p.event.failedReason, reason);
    assert.equal(p.job.failedReason, reason);
    assert.equal(p.job.attemptsMade, 1, 'failed at once although attempts remain (unrecoverable)');
    assert.equal(p.job.deferredFailure, undefined, 'defa is cleared when it fails');
    assert.deepEqual(p.unsuccessful, [childKey]);
    assert.deepEqual(p.dependencies, []);
    assert.deepEqual(lifecycle(h, parentId).slice(-3), ['waiting', 'active', 'failed']);
    assert.equal(h.events.filter({ event: 'waiting', jobId: parentId })[0].prev, 'waiting-children');
    assert.equal(h.events.filter({ event: 'retries-exhausted', jobId: parentId }).length, 0);
  });

  it('children on the worker under test, parents on Node\'s worker: values and failParentOnFailure reach Node', async (t) => {
    await mixedFlows(t, await s.setup(t, redis), 'node', s.WORKER);
  });

  it('children on Node\'s worker, parents on the worker under test: it reads their values and fails on defa', async (t) => {
    await mixedFlows(t, await s.setup(t, redis), s.WORKER, 'node');
  });

  it('continueParentOnFailure: the parent runs and completes; the failure is in getIgnoredChildrenFailures', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const flow = await flowProducer(t, h).add({
      name: 'parent',
      queueName: h.queueName,
      data: { succeedOnAttempt: 1 },
      children: [
        { name: 'ok', queueName: h.queueName, data: { succeedOnAttempt: 1 } },
        // Runs after the other child, so the parent is released by this failure.
        { name: 'bad', queueName: h.queueName, data: { fatal: true, message: 'child broke' }, opts: { continueParentOnFailure: true, delay: 300 } },
      ],
    });
    const [okKey, badKey] = flow.children.map((c) => h.key(c.job.id));
    const p = await finishedParent(h, flow.job.id);
    assert.equal(p.state, 'completed');
    assert.deepEqual(p.processed, { [okKey]: { succeededOnAttempt: 1 } });
    assert.deepEqual(p.ignored, { [badKey]: 'child broke' });
    assert.deepEqual(p.dependencies, []);
    assert.deepEqual(p.unsuccessful, []);
    assert.equal(h.events.filter({ event: 'waiting', jobId: flow.job.id })[0].prev, 'waiting-children');
  });

  it('ignoreDependencyOnFailure: the parent completes, the failure recorded as ignored', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const flow = await flowProducer(t, h).add({
      name: 'parent',
      queueName: h.queueName,
      data: { succeedOnAttempt: 1 },
      children: [{ name: 'bad', queueName: h.queueName, data: { fatal: true, message: 'child broke' }, opts: { ignoreDependencyOnFailure: true } }],
    });
    const badKey = h.key(flow.children[0].job.id);
    const p = await finishedParent(h, flow.job.id);
    assert.equal(p.state, 'completed');
    assert.deepEqual(p.job.returnvalue, { succeededOnAttempt: 1 });
    assert.deepEqual(p.ignored, { [badKey]: 'child broke' });
    assert.deepEqual(p.processed, {});
    assert.deepEqual(p.dependencies, []);
    assert.equal(await (await h.job(flow.children[0].job.id)).getState(), 'failed');
  });

  it('removeDependencyOnFailure: the parent completes and keeps no trace of the child', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const flow = await flowProducer(t, h).add({
      name: 'parent',
      queueName: h.queueName,
      data: { succeedOnAttempt: 1 },
      children: [{ name: 'bad', queueName: h.queueName, data: { fatal: true, message: 'child broke' }, opts: { removeDependencyOnFailure: true } }],
    });
    const p = await finishedParent(h, flow.job.id);
    assert.equal(p.state, 'completed');
    assert.deepEqual(p.ignored, {});
    assert.deepEqual(p.processed, {});
    assert.deepEqual(p.dependencies, []);
    assert.deepEqual(p.unsuccessful, []);
  });

  it('no failure flag: a failed child keeps its parent waiting for good', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const flow = await flowProducer(t, h).add({
      name: 'parent',
      queueName: h.queueName,
      data: { succeedOnAttempt: 1 },
      children: [{ name: 'bad', queueName: h.queueName, data: { fatal: true, message: 'child broke' } }],
    });
    const childId = flow.children[0].job.id;
    await h.waitForEvent((e) => e.event === 'failed' && e.jobId === childId, { timeout: 15000, message: 'child failed' });
    await barrier(h, { succeedOnAttempt: 1 });
    const parent = await h.job(flow.job.id);
    assert.equal(await parent.getState(), 'waiting-children');
    assert.deepEqual(await h.db.smembers(h.key(`${flow.job.id}:dependencies`)), [h.key(childId)]);
    assert.deepEqual(await parent.getIgnoredChildrenFailures(), {});
    assert.equal(h.events.filter({ event: 'waiting', jobId: flow.job.id }).length, 0, 'never released');
    assert.equal(h.events.filter({ event: 'active', jobId: flow.job.id }).length, 0, 'never run');
  });

  it('retention: a failed child removed at once (removeOnFail: true) frees its parent', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const flow = await flowProducer(t, h).add({
      name: 'parent',
      queueName: h.queueName,
      data: { succeedOnAttempt: 1 },
      children: [{ name: 'bad', queueName: h.queueName, data: { fatal: true, message: 'child broke' }, opts: { removeOnFail: true } }],
    });
    const childId = flow.children[0].job.id;
    const p = await finishedParent(h, flow.job.id);
    assert.equal(p.state, 'completed');
    assert.deepEqual(p.dependencies, []);
    assert.deepEqual(p.ignored, {});
    assert.equal(await h.db.exists(h.key(childId)), 0, 'the child is gone');
    assert.equal(h.events.filter({ event: 'failed', jobId: childId }).length, 1);
    assert.equal(h.events.filter({ event: 'waiting', jobId: flow.job.id })[0].prev, 'waiting-children');
  });

  it('retention: a failed child trimmed later by another job\'s removeOnFail count frees its parent', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail' });
    const flow = await flowProducer(t, h).add({
      name: 'parent',
      queueName: h.queueName,
      data: { succeedOnAttempt: 1 },
      children: [{ name: 'bad', queueName: h.queueName, data: { fatal: true, message: 'child broke' } }],
    });
    const childId = flow.children[0].job.id;
    await h.waitForEvent((e) => e.event === 'failed' && e.jobId === childId, { timeout: 15000, message: 'child failed' });
    assert.equal(await (await h.job(flow.job.id)).getState(), 'waiting-children', 'kept waiting while the failed child exists');
    // Another failure keeping only the newest failed job trims the child.
    const trimmer = await h.queue.add('trimmer', { fatal: true, message: 'trim' }, { removeOnFail: 1 });
    const p = await finishedParent(h, flow.job.id);
    assert.equal(p.state, 'completed');
    assert.deepEqual(p.dependencies, []);
    assert.equal(await h.db.exists(h.key(childId)), 0, 'the child was trimmed');
    assert.deepEqual(await h.db.zrange(h.key('failed'), 0, -1), [trimmer.id]);
  });

  it('retention: a completed child removed at once (removeOnComplete: true) leaves its value to the parent', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const flow = await flowProducer(t, h).add({
      name: 'parent',
      queueName: h.queueName,
      data: { ms: 0, returnChildren: true },
      children: [{ name: 'child', queueName: h.queueName, data: { ms: 5 }, opts: { removeOnComplete: true } }],
    });
    const childId = flow.children[0].job.id;
    const p = await finishedParent(h, flow.job.id);
    assert.equal(p.state, 'completed');
    assert.deepEqual(p.processed, { [h.key(childId)]: { slept: 5 } });
    assert.deepEqual(p.job.returnvalue, { slept: 0, children: { [h.key(childId)]: { slept: 5 } } });
    assert.equal(await h.db.exists(h.key(childId)), 0, 'the child is gone');
  });

  it('moveToWaitingChildren parks the running parent until its child completes, without counting an attempt', async (t) => {
    const h = await s.setup(t, redis);
    const kidsQueue = `${h.queueName}-kids`;
    const kids = new h.bullmq.Queue(kidsQueue, { connection: h.db.options, prefix: s.PREFIX });
    kids.on('error', () => {});
    t.after(() => kids.close());
    const parent = await h.queue.add('parent', { ms: 0, waitChildren: true, returnChildren: true });
    const child = await kids.add('child', { ms: 5 }, { parent: { id: parent.id, queue: `${s.PREFIX}:${h.queueName}` } });
    const childKey = `${s.PREFIX}:${kidsQueue}:${child.id}`;
    h.startWorker({ processor: 'sleep' });

    // Parked while its child waits in a queue nobody works on yet.
    const parked = await h.waitForEvent((e) => e.event === 'waiting-children' && e.jobId === parent.id, { message: 'parent parked' });
    assert.equal(parked.prev, 'active');
    const waiting = await h.job(parent.id);
    assert.equal(await waiting.getState(), 'waiting-children');
    assert.equal(waiting.attemptsMade, 0, 'parking is not an attempt');
    assert.equal(await h.db.exists(h.key(`${parent.id}:lock`)), 0, 'lock released');
    assert.equal(await h.db.lpos(h.key('active'), parent.id), null);

    h.startWorker({ processor: 'sleep', queueName: kidsQueue });
    const returned = await s.withTimeout(parent.waitUntilFinished(h.queueEvents), 15000, 'parent waitUntilFinished');
    assert.deepEqual(returned, { slept: 0, children: { [childKey]: { slept: 5 } } });
    assert.deepEqual(lifecycle(h, parent.id), ['added', 'waiting', 'active', 'waiting-children', 'waiting', 'active', 'completed']);
    assert.equal(h.events.filter({ event: 'waiting', jobId: parent.id })[1].prev, 'waiting-children');
    const done = await h.job(parent.id);
    assert.equal(done.attemptsMade, 1, 'only the completing run counts');
    assert.equal(done.attemptsStarted, 2);
    assert.equal(h.events.filter({ event: 'failed', jobId: parent.id }).length, 0);
  });

  it('moveToWaitingChildren with nothing pending leaves the job running', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'sleep' });
    const job = await h.queue.add('plain', { ms: 0, waitChildren: true, returnChildren: true });
    const returned = await s.withTimeout(job.waitUntilFinished(h.queueEvents), 15000, 'waitUntilFinished');
    assert.deepEqual(returned, { slept: 0, children: {} });
    assert.deepEqual(lifecycle(h, job.id), ['added', 'waiting', 'active', 'completed']);
  });
});
