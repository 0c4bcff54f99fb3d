'use strict';
// The Redis URL forms the producer shares with the worker (issue 10): redis://, rediss:// with
// the REDIS_TLS_* files, ACL user:password@, redis+sentinel://, redis+cluster:// (or
// REDIS_CLUSTER=1). One REDIS_JOB_URL switches both sides: a Queue and the worker (ours, or
// Node's with WORKER=node) meet through a sentinel, and on a Redis Cluster of three masters
// and three replicas, and the Queue sees every job completed once.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFile, spawn } = require('node:child_process');
const net = require('node:net');
const s = require('./support');
const { bullmq, version } = require('../src/bullmq');
const {
  connectionOptions, cacheConnectionOptions, clusterOptions, createQueue, createQueueEvents, settings, checkSettings,
  OWNED_CONNECTION,
} = require('../src/queue');
const { redact } = require('../src/server');

const EXAMPLE_DIR = path.resolve(__dirname, '..');

/** Runs scripts/<script> with `env` over this process's environment; resolves {code, stdout, stderr}. */
function cli(script, args, env) {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(EXAMPLE_DIR, 'scripts', script), ...args], {
      cwd: EXAMPLE_DIR, env: { ...process.env, ...env }, timeout: 30000,
    }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}

const redis = s.useRedis();

function portOpen(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

describe(`Redis URL forms (worker=${s.WORKER}, bullmq ${version})`, () => {
  it('parses the worker\'s URL forms into ioredis options, without echoing secrets', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fw-tls-'));
    fs.writeFileSync(path.join(dir, 'ca.crt'), 'CA');
    fs.writeFileSync(path.join(dir, 'c.crt'), 'CERT');
    fs.writeFileSync(path.join(dir, 'c.key'), 'KEY');
    const env = {
      REDIS_TLS_CA_FILE: path.join(dir, 'ca.crt'),
      REDIS_TLS_CERT_FILE: path.join(dir, 'c.crt'),
      REDIS_TLS_KEY_FILE: path.join(dir, 'c.key'),
    };
    const tls = connectionOptions('rediss://app:p%40ss@redis.example:6380/1', env);
    assert.equal(tls.host, 'redis.example');
    assert.equal(tls.port, 6380);
    assert.equal(tls.db, 1);
    assert.equal(tls.username, 'app');
    assert.equal(tls.password, 'p@ss');
    assert.equal(String(tls.tls.ca), 'CA');
    assert.equal(String(tls.tls.cert), 'CERT');
    assert.equal(String(tls.tls.key), 'KEY');

    const sentinel = connectionOptions(
      'redis+sentinel://app:pw@s1:26380,s2/mymaster/1?sentinelPassword=sp',
      {},
    );
    assert.deepEqual(sentinel, {
      sentinels: [{ host: 's1', port: 26380 }, { host: 's2', port: 26379 }],
      name: 'mymaster',
      db: 1,
      username: 'app',
      password: 'pw',
      sentinelPassword: 'sp',
    });
    // The cache default is db 0 of the job server, in every mode.
    assert.equal(cacheConnectionOptions({ REDIS_JOB_URL: 'redis+sentinel://s1/mymaster/1' }).db, 0);
    assert.equal(cacheConnectionOptions({ REDIS_JOB_URL: 'redis://h:7/1' }).port, 7);
    for (const bad of ['redis+sentinel://u:SECRET@/m/1', 'redis+sentinel://u:SECRET@h/m/x', 'memcached://u:SECRET@h']) {
      assert.throws(() => connectionOptions(bad, {}), (err) => !err.message.includes('SECRET'));
    }
  });

  it('reads the worker\'s Cluster forms, and refuses a Cluster queue without a hash tag in its words', () => {
    assert.deepEqual(clusterOptions('redis+cluster://app:p%40ss@a:7000,b/0', {}), {
      nodes: [{ host: 'a', port: 7000 }, { host: 'b', port: 6379 }],
      options: { redisOptions: { username: 'app', password: 'p@ss' }, enableReadyCheck: true },
    });
    // REDIS_CLUSTER=1 reads a plain URL as a seed; without it the URL is one server.
    assert.deepEqual(clusterOptions('redis://a:7000', { REDIS_CLUSTER: '1' }).nodes, [{ host: 'a', port: 7000 }]);
    assert.equal(clusterOptions('redis://a:7000/1', {}), null);
    assert.equal(connectionOptions('redis://a:7000/1', { REDIS_CLUSTER: '0' }).db, 1);
    assert.ok(clusterOptions('rediss+cluster://a:7000', {}).options.redisOptions.tls);
    for (const bad of ['redis+cluster://u:SECRET@a:7000/1', 'redis+cluster://u:SECRET@/', 'redis+cluster://u:SECRET@a:99999',
      'redis+cluster://u:SECRET@a:7000?x=1']) {
      assert.throws(() => clusterOptions(bad, {}), (err) => !err.message.includes('SECRET'), bad);
    }
    assert.throws(() => clusterOptions('redis://a:1', { REDIS_CLUSTER: 'maybe' }), /REDIS_CLUSTER/);
    // The worker's message, word for word after `invalid BULL_PREFIX: `.
    const refuse = /Error: invalid BULL_PREFIX: REDIS_JOB_URL is a Redis Cluster: every key of a queue must hash to one slot: put a hash tag in the prefix or the queue name, for example BULL_PREFIX=\{bull\} \(as BullMQ requires of Node's Queue and Worker too\)$/;
    for (const env of [
      { REDIS_JOB_URL: 'redis+cluster://a:7000' },
      { REDIS_JOB_URL: 'redis://a:7000', REDIS_CLUSTER: '1', BULL_PREFIX: 'bull', QUEUE_NAME: 'fetch' },
    ]) {
      assert.throws(() => checkSettings(settings({}, env), env), refuse);
      assert.throws(() => createQueue({}, env), refuse);
      assert.throws(() => createQueueEvents({}, {}, env), refuse);
    }
    for (const [prefix, queueName] of [['{bull}', 'fetch'], ['bull', '{fetch}'], ['app{x}', 'fetch']]) {
      const env = { REDIS_JOB_URL: 'redis+cluster://a:7000', BULL_PREFIX: prefix, QUEUE_NAME: queueName };
      assert.doesNotThrow(() => checkSettings(settings({}, env), env));
    }
    for (const [prefix, queueName] of [['{}bull', 'fetch'], ['{bull', 'fetch'], ['bull}', '{fetch']]) {
      const env = { REDIS_JOB_URL: 'redis+cluster://a:7000', BULL_PREFIX: prefix, QUEUE_NAME: queueName };
      assert.throws(() => checkSettings(settings({}, env), env), refuse, `${prefix} ${queueName}`);
    }
    // The app's log line hides a password without a user (compose's redis://:pw@redis form).
    assert.equal(redact('redis://:SECRET@redis:6379/1'), 'redis://:***@redis:6379/1');
    assert.equal(redact('redis+cluster://u:SECRET@a:1,b:2'), 'redis+cluster://u:***@a:1,b:2');
  });

  it('a Queue and the worker meet through a sentinel with one REDIS_JOB_URL', async (t) => {
    const h = await s.setup(t, redis);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fw-sentinel-'));
    const port = await s.freePort();
    const conf = path.join(dir, 'sentinel.conf');
    fs.writeFileSync(conf, [
      `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`,
      `sentinel monitor mymaster 127.0.0.1 ${redis.server.port} 1`,
    ].join('\n') + '\n');
    const sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
    t.after(() => {
      sentinel.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    });
    await s.waitUntil(() => portOpen(port), { message: 'the sentinel to listen' });
    const url = (db) => `redis+sentinel://127.0.0.1:${port}/mymaster/${db}`;

    const queue = createQueue({ redisUrl: url(1), queueName: h.queueName });
    t.after(() => queue.close());
    const jobs = await queue.addBulk([1, 2, 3, 4, 5].map((i) => ({ name: 'fetch-job', data: { i } })));
    const worker = s.startWorker({ redis: { url }, queueName: h.queueName });
    t.after(() => worker.stop());
    await s.waitUntil(async () => (await queue.getJobCounts('completed')).completed === jobs.length, {
      timeout: 20000,
      message: 'every job completed through the sentinel',
      describe: () => worker.logs().slice(-20).join('\n'),
    });
    const counts = await queue.getJobCounts('active', 'wait', 'failed');
    assert.deepEqual(counts, { active: 0, wait: 0, failed: 0 });
  });

  it('on a Redis Cluster (3 masters + 3 replicas) the producer and the worker meet with one redis+cluster:// URL', async (t) => {
    const cluster = await s.RedisCluster.start();
    t.after(() => cluster.destroy());
    const url = cluster.url();
    const prefix = '{bull}';
    const queueName = `cluster-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const env = { REDIS_JOB_URL: url, QUEUE_NAME: queueName, BULL_PREFIX: prefix };

    // The producer's CLIs refuse the queue without a hash tag, as the worker does (exit 2, same words).
    const refused = await cli('enqueue.js', ['--count', '1'], { ...env, BULL_PREFIX: 'bull' });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /invalid BULL_PREFIX: REDIS_JOB_URL is a Redis Cluster: .*BULL_PREFIX=\{bull\}/);

    const queue = createQueue({ redisUrl: url, queueName, prefix });
    const queueEvents = createQueueEvents({ redisUrl: url, queueName, prefix }, { lastEventId: '0-0', blockingTimeout: 1000 });
    const clusterOf = (owner) => owner[OWNED_CONNECTION];
    let closed = false;
    t.after(async () => {
      if (!closed) await Promise.allSettled([queue.close(), queueEvents.close()]);
    });
    assert.equal(clusterOf(queue).isCluster, true);
    const completedEvents = new Map();
    queueEvents.on('completed', ({ jobId }) => completedEvents.set(jobId, (completedEvents.get(jobId) || 0) + 1));
    await s.withTimeout(queueEvents.waitUntilReady(), 20000, 'QueueEvents on the cluster');

    const bulk = await queue.addBulk(Array.from({ length: 30 }, (_, i) => ({ name: 'fetch-job', data: { i } })));
    // The enqueue CLI with REDIS_CLUSTER=1 and a plain redis:// seed (the other form).
    const seed = `redis://127.0.0.1:${cluster.nodes[1].port}`;
    const added = await cli('enqueue.js', ['--count', '5'], { ...env, REDIS_JOB_URL: seed, REDIS_CLUSTER: '1' });
    assert.equal(added.code, 0, added.stderr);
    const ids = [...bulk.map((j) => j.id), ...added.stdout.split(/\s+/).filter(Boolean)];
    assert.equal(new Set(ids).size, 35);

    const worker = s.startWorker({
      redis: { url: () => url },
      queueName,
      env: { BULL_PREFIX: prefix, JOB_CONCURRENCY: '4' },
    });
    t.after(() => worker.stop().catch(() => worker.kill()));
    await s.waitUntil(async () => (await queue.getJobCounts('completed')).completed === ids.length, {
      timeout: 30000,
      message: `every job completed on the cluster by the ${s.WORKER} worker`,
      describe: async () => `${JSON.stringify(await queue.getJobCounts())}\n${worker.logs().slice(-20).join('\n')}`,
    });
    // wait.js (QueueEvents + waitUntilFinished over the cluster) sees them completed too.
    const some = ids.slice(-5);
    const waited = await cli('wait.js', [...some.flatMap((id) => ['--job-id', id]), '--timeout', '20000'], env);
    assert.equal(waited.code, 0, waited.stderr);
    const lines = waited.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => [l.jobId, l.status]), some.map((id) => [id, 'completed']));

    // Every job completed exactly once, as Node's Queue and QueueEvents see it; nothing left.
    await s.waitUntil(() => ids.every((id) => completedEvents.has(id)), {
      timeout: 10000,
      message: 'a completed event for every job',
    });
    for (const id of ids) {
      assert.equal(completedEvents.get(id), 1, `completed events of job ${id}`);
      const job = await bullmq.Job.fromId(queue, id);
      assert.equal(await job.getState(), 'completed', `job ${id}`);
      assert.equal(job.attemptsMade, 1, `attempts of job ${id}`);
      assert.ok(job.finishedOn, `job ${id} finished`);
    }
    assert.deepEqual(await queue.getJobCounts('active', 'wait', 'failed', 'delayed'), { active: 0, wait: 0, failed: 0, delayed: 0 });
    // The queue's keys live in one slot, on one master: the hash tag did its work.
    const slots = new Set();
    for (const suffix of ['wait', 'completed', 'events', 'meta', ids[0]]) {
      slots.add(await clusterOf(queue).cluster('KEYSLOT', `${prefix}:${queueName}:${suffix}`));
    }
    assert.equal(slots.size, 1);

    const stopped = await worker.stop();
    assert.equal(stopped.code, 0, worker.logs().slice(-20).join('\n'));

    // The app (src/server.js) on the same URL: its /health reaches Redis through the cluster
    // (MongoDB is absent here, so the whole answer is 503), and SIGTERM closes it cleanly.
    // Without a hash tag it refuses to start with the worker's words.
    const appPort = await s.freePort();
    const appEnv = { ...process.env, ...env, PORT: String(appPort), API_AUTH: 'off', MONGO_URI: 'mongodb://127.0.0.1:1/x' };
    const app = spawn(process.execPath, [path.join(EXAMPLE_DIR, 'src', 'server.js')], { env: appEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let appLog = '';
    app.stdout.on('data', (d) => (appLog += d));
    app.stderr.on('data', (d) => (appLog += d));
    const appExit = new Promise((resolve) => app.on('exit', (code) => resolve(code)));
    t.after(() => app.kill('SIGKILL'));
    const health = await s.waitUntil(async () => {
      const body = await (await fetch(`http://127.0.0.1:${appPort}/health`)).json();
      return body.redis === 'ok' && body;
    }, { timeout: 15000, message: 'the app\'s /health to reach Redis through the cluster', describe: () => appLog });
    assert.equal(health.status, 'unavailable');
    app.kill('SIGTERM');
    assert.equal(await s.withTimeout(appExit, 15000, 'the app to stop'), 0, appLog);
    assert.match(appLog, /stopped/);
    const noTag = spawn(process.execPath, [path.join(EXAMPLE_DIR, 'src', 'server.js')], {
      env: { ...appEnv, BULL_PREFIX: 'bull' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let noTagLog = '';
    noTag.stdout.on('data', (d) => (noTagLog += d));
    noTag.stderr.on('data', (d) => (noTagLog += d));
    const noTagExit = await s.withTimeout(new Promise((resolve) => noTag.on('exit', resolve)), 15000, 'the app to refuse');
    assert.equal(noTagExit, 2, noTagLog);
    assert.match(noTagLog, /invalid BULL_PREFIX: REDIS_JOB_URL is a Redis Cluster: .*BULL_PREFIX=\{bull\}/);
    // Closing the Queue and the QueueEvents closes the clusters the producer opened for them.
    closed = true;
    await Promise.all([queue.close(), queueEvents.close()]);
    assert.equal(clusterOf(queue).status, 'end');
    assert.equal(clusterOf(queueEvents).status, 'end');
  });
});
