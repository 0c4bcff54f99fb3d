'use strict';
// Queue metrics (METRICS_MAX_DATA_POINTS, Node's Worker `metrics: {maxDataPoints}`), read the
// way Bull Board reads them: `Queue.getMetrics('completed' | 'failed')`.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const s = require('./support');
const { version } = require('../src/bullmq');

const redis = s.useRedis();

describe(`metrics (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('every finished job is counted per kind; without the setting nothing is written', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'fail', env: { METRICS_MAX_DATA_POINTS: '60' } });
    await h.queue.addBulk([
      ...Array.from({ length: 3 }, () => ({ name: 'fetch-job', data: { succeedOnAttempt: 1 } })),
      { name: 'fetch-job', data: { fatal: true }, opts: { attempts: 1 } },
    ]);
    await h.waitForCounts({ completed: 3, failed: 1 });
    const completed = await h.queue.getMetrics('completed');
    const failed = await h.queue.getMetrics('failed');
    assert.equal(Number(completed.meta.count), 3, JSON.stringify(completed));
    assert.equal(Number(failed.meta.count), 1, JSON.stringify(failed));
    assert.ok(Number(completed.meta.prevTS) > 0, 'the clock started with the first finish');
    assert.equal(Number(completed.meta.prevCount), 0);

    const off = await s.setup(t, redis);
    off.startWorker({ processor: 'noop' });
    await off.queue.add('fetch-job', {});
    await off.waitForCounts({ completed: 1 });
    assert.equal(await off.db.exists(off.key('metrics:completed'), off.key('metrics:completed:data')), 0, 'off by default');
  });

  it('minutes that passed become data points: the delta, then zeros for silent minutes, capped', async (t) => {
    const h = await s.setup(t, redis);
    h.startWorker({ processor: 'noop', env: { METRICS_MAX_DATA_POINTS: '2' } });
    // As if 5 jobs had finished three minutes ago, the last point then.
    await h.db.hset(h.key('metrics:completed'), 'count', 5, 'prevTS', Date.now() - 3 * 60000, 'prevCount', 0);
    await h.queue.add('fetch-job', {});
    await h.waitForCounts({ completed: 1 });
    assert.deepEqual(await h.db.lrange(h.key('metrics:completed:data'), 0, -1), ['0', '5'],
      'three minutes, capped at two points: one zero, then the delta of 5');
    const m = await h.queue.getMetrics('completed');
    assert.equal(Number(m.meta.count), 6);
    assert.equal(Number(m.meta.prevCount), 5);
    assert.ok(Date.now() - Number(m.meta.prevTS) < 60000, 'prevTS moved to the last finish');
    assert.deepEqual(m.data.map(Number), [0, 5]);
  });
});
