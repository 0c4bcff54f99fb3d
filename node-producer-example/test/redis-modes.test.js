'use strict';
// The Redis URL forms the producer shares with the worker (issue 10): redis://, rediss:// with
// the REDIS_TLS_* files, ACL user:password@, redis+sentinel://. One REDIS_JOB_URL switches
// both sides: a Queue and the worker (ours, or Node's with WORKER=node) meet through a
// sentinel, and the Queue sees every job completed.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const net = require('node:net');
const s = require('./support');
const { version } = require('../src/bullmq');
const { connectionOptions, cacheConnectionOptions, createQueue } = require('../src/queue');

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
});
