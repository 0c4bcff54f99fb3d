'use strict';
// Test harness for the interop suite: a private redis-server per test file, a unique queue per
// test, workers under test (the Rust binary, or the Node reference worker with WORKER=node),
// an event recorder on QueueEvents, and bounded waits whose failures say what was seen.
//
// Env: WORKER=rust|node (default rust), FETCH_WORKER_BIN (default ../target/release/fetch-worker, else ../target/debug/fetch-worker
// relative to node-producer-example), BULLMQ_MAJOR=5|6, TEST_LOG=1 (stream worker/redis logs),
// MONGO_URI (a real MongoDB for the app tests instead of nx-27017).

const { execFile, spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { before, after } = require('node:test');
const IORedis = require('ioredis');
const { bullmq, major, version } = require('../src/bullmq');
const { createQueue, createQueueEvents } = require('../src/queue');
const { MongoClient } = require('mongodb');

const EXAMPLE_DIR = path.resolve(__dirname, '..');
const WORKER_SCRIPT = path.join(EXAMPLE_DIR, 'scripts', 'worker.js');
const WORKER = process.env.WORKER === 'node' ? 'node' : 'rust';
// The release build is what tests/setup.sh builds; a debug build is used when it is the only one.
function defaultWorkerBin() {
  const release = path.resolve(EXAMPLE_DIR, '../target/release/fetch-worker');
  return fs.existsSync(release) ? release : path.resolve(EXAMPLE_DIR, '../target/debug/fetch-worker');
}
const FETCH_WORKER_BIN = process.env.FETCH_WORKER_BIN
  ? path.resolve(EXAMPLE_DIR, process.env.FETCH_WORKER_BIN)
  : defaultWorkerBin();
const TEST_LOG = Boolean(process.env.TEST_LOG);
const PREFIX = 'bull';

/** Short timings so stalled recovery and backoff happen within seconds. */
const FAST_ENV = Object.freeze({
  LOCK_DURATION_MS: '2000',
  STALLED_INTERVAL_MS: '1000',
  DRAIN_DELAY_MS: '1000',
  SHUTDOWN_TIMEOUT_MS: '10000',
});

/** Every event name BullMQ writes to the `events` stream that these tests care about. */
const EVENT_NAMES = [
  'added', 'waiting', 'active', 'progress', 'completed', 'failed', 'retries-exhausted', 'delayed',
  'stalled', 'drained', 'removed', 'duplicated', 'paused', 'resumed', 'waiting-children',
];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Child processes: every one is registered so it dies with the test process, whatever happens.

const children = new Set();

function killAllChildren() {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
/** Temp dirs of redis-servers; removed at exit even if an `after` hook never ran. */
const tempDirs = new Set();

process.on('exit', () => {
  killAllChildren();
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    killAllChildren();
    process.exit(130);
  });
}

/**
 * Spawns a tracked child. Keeps the last lines of its output for diagnostics and resolves
 * `exited` with `{code, signal}` when it ends.
 */
function spawnTracked(label, command, args, options) {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const lines = [];
  const collect = (stream) => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop();
      for (const line of parts) {
        lines.push(line);
        if (lines.length > 300) lines.shift();
        if (TEST_LOG) process.stderr.write(`[${label}] ${line}\n`);
      }
    });
  };
  collect(child.stdout);
  collect(child.stderr);
  const exited = new Promise((resolve) => {
    child.on('error', (err) => {
      lines.push(`spawn error: ${err.message}`);
      children.delete(child);
      resolve({ code: null, signal: null, error: err });
    });
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  return { child, exited, lines };
}

/** Resolves `promise`, or rejects with `message` after `ms`. */
async function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (timed out after ${ms} ms)`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `probe` (sync or async) until it returns a truthy value, which is returned. Throws after
 * `timeout` ms with `message` plus whatever `describe()` says about the current state.
 */
async function waitUntil(probe, { timeout = 10000, interval = 50, message = 'condition', describe } = {}) {
  const deadline = Date.now() + timeout;
  let lastError;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      let detail = lastError ? `\nlast probe error: ${lastError.stack || lastError}` : '';
      if (describe) {
        try {
          detail += `\n${await describe()}`;
        } catch (err) {
          detail += `\n(could not describe state: ${err.message})`;
        }
      }
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${detail}`);
    }
    await sleep(interval);
  }
}

// ---------------------------------------------------------------------------------------------
// Redis

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A private redis-server on a free port, with AOF on so a restart keeps the data. */
class RedisServer {
  static async start() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fetch-worker-redis-'));
    tempDirs.add(dir);
    const server = new RedisServer(dir);
    for (let attempt = 1; ; attempt++) {
      server.port = await freePort();
      try {
        await server.spawn();
        return server;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
  }

  /** `extraArgs`: more redis-server arguments (a cluster node's), after the defaults. */
  constructor(dir, extraArgs = []) {
    this.dir = dir;
    this.port = 0;
    this.proc = null;
    this.extraArgs = extraArgs;
  }

  url(db) {
    return `redis://127.0.0.1:${this.port}/${db}`;
  }

  async spawn() {
    const args = [
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--appendonly', 'yes', '--save', '', '--daemonize', 'no', '--maxmemory-policy', 'noeviction',
      '--logfile', '', ...this.extraArgs,
    ];
    this.proc = spawnTracked(`redis:${this.port}`, 'redis-server', args, { cwd: this.dir });
    const { exited, lines } = this.proc;
    let gone = null;
    exited.then((e) => (gone = e));
    await waitUntil(async () => {
      if (gone) throw new Error(`redis-server exited early (${JSON.stringify(gone)}):\n${lines.join('\n')}`);
      return (await ping(this.port)) === '+PONG';
    }, { timeout: 10000, message: `redis-server on port ${this.port} to answer PING` }).catch((err) => {
      if (!gone) this.proc.child.kill('SIGKILL');
      throw err;
    });
  }

  /** SIGTERM (redis flushes the AOF and exits), bounded; SIGKILL if it does not go. */
  async stop() {
    if (!this.proc) return;
    const { child, exited } = this.proc;
    this.proc = null;
    child.kill('SIGTERM');
    try {
      await withTimeout(exited, 10000, 'redis-server to exit after SIGTERM');
    } catch {
      child.kill('SIGKILL');
      await exited;
    }
  }

  async restart() {
    await this.stop();
    await this.spawn();
  }

  async destroy() {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
    tempDirs.delete(this.dir);
  }
}

/** One raw PING over a socket; resolves to the reply line or null. */
function ping(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const done = (value) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(500, () => done(null));
    socket.on('error', () => done(null));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      reply += d;
      if (reply.includes('\r\n')) done(reply.trim());
    });
  });
}

/** A free loopback port whose cluster bus port (`port + 10000`) is free too. */
async function freeClusterPort() {
  for (;;) {
    const port = await freePort();
    if (port >= 55000) continue;
    const busFree = await new Promise((resolve) => {
      const server = net.createServer();
      server.unref();
      server.once('error', () => resolve(false));
      server.listen(port + 10000, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (busFree) return port;
  }
}

/** One command over a raw socket (RESP array of bulk strings); resolves to the reply text. */
function rawCommand(port, args, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no reply from 127.0.0.1:${port} to ${args[0]}`));
    }, timeoutMs);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('connect', () => {
      socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')}`);
    });
    socket.on('data', (d) => {
      reply += d;
      // A bulk string reply ($<len>\r\n<text>\r\n) or a one-line reply.
      const m = /^\$(\d+)\r\n/.exec(reply);
      const whole = m ? Buffer.byteLength(reply) >= m[0].length + Number(m[1]) + 2 : reply.includes('\r\n');
      if (whole) {
        clearTimeout(timer);
        socket.destroy();
        resolve(m ? reply.slice(m[0].length, m[0].length + Number(m[1])) : reply.trim());
      }
    });
  });
}

/** A field of INFO-style text (`name:value` lines). */
function infoField(text, name) {
  const line = String(text).split(/\r?\n/).find((l) => l.startsWith(`${name}:`));
  return line ? line.slice(name.length + 1).trim() : undefined;
}

/**
 * A Redis Cluster on loopback: `masters` x (1 + `replicas`) redis-servers with
 * `cluster-enabled yes` on free ports (their bus ports free too), joined by `redis-cli --cluster
 * create`, and ready once every node says `cluster_state:ok` and knows every other. `url()` is
 * the `redis+cluster://` seed list the worker and the producer both take.
 */
class RedisCluster {
  static async start({ masters = 3, replicas = 1 } = {}) {
    const cluster = new RedisCluster();
    try {
      for (let i = 0; i < masters * (1 + replicas); i++) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fetch-worker-cluster-'));
        tempDirs.add(dir);
        const node = new RedisServer(dir, [
          '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000',
          '--appendonly', 'no',
        ]);
        node.port = await freeClusterPort();
        await node.spawn();
        cluster.nodes.push(node);
      }
      const create = await new Promise((resolve) => {
        execFile('redis-cli', [
          '--cluster', 'create', ...cluster.nodes.map((n) => `127.0.0.1:${n.port}`),
          '--cluster-replicas', String(replicas), '--cluster-yes',
        ], { timeout: 30000 }, (err, stdout, stderr) => resolve({ err, stdout, stderr }));
      });
      if (create.err) throw new Error(`redis-cli --cluster create failed: ${create.err.message}\n${create.stdout}${create.stderr}`);
      const total = String(cluster.nodes.length);
      for (const node of cluster.nodes) {
        await waitUntil(async () => {
          const info = await rawCommand(node.port, ['CLUSTER', 'INFO']);
          return infoField(info, 'cluster_state') === 'ok' && infoField(info, 'cluster_known_nodes') === total;
        }, { timeout: 30000, interval: 100, message: `cluster node ${node.port} to say cluster_state:ok` });
      }
      return cluster;
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
  }

  constructor() {
    this.nodes = [];
  }

  /** `redis+cluster://` with every node as a seed; the `db` argument is ignored (a cluster has only 0). */
  url() {
    return `redis+cluster://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`;
  }

  async destroy() {
    await Promise.allSettled(this.nodes.map((n) => n.destroy()));
    this.nodes = [];
  }
}

/**
 * Registers file-level hooks that start one redis-server before the tests and destroy it after.
 * Returns a holder whose `server` is set once `before` has run.
 */
function useRedis() {
  const holder = { server: null };
  before(async () => {
    holder.server = await RedisServer.start();
  });
  after(async () => {
    if (holder.server) await holder.server.destroy();
  });
  return holder;
}

// ---------------------------------------------------------------------------------------------
// MongoDB (the app tests): MONGO_URI when set (a real MongoDB), otherwise the MongoDB-wire server
// nx-27017 (pip install nx-27017) on a free port, started through ../tests/support/nx_mongo.py,
// which patches Decimal128 in.

const NX_LAUNCHER = path.resolve(EXAMPLE_DIR, '..', 'tests', 'support', 'nx_mongo.py');

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function listening(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (value) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(500, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => done(true));
  });
}

/** `mongodb://hosts[/db][?options]` with the database replaced by `db`. */
function mongoUriWithDb(uri, db) {
  const m = /^(mongodb(?:\+srv)?:\/\/[^/?]+)(\/[^?]*)?(\?.*)?$/.exec(uri);
  if (!m) throw new Error(`not a mongodb:// URI: ${uri}`);
  return `${m[1]}/${db}${m[3] || ''}`;
}

class MongoServer {
  static async start() {
    if (process.env.MONGO_URI) return new MongoServer({ uri: process.env.MONGO_URI, real: true });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fetch-worker-mongo-'));
    tempDirs.add(dir);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const server = new MongoServer({ uri: `mongodb://127.0.0.1:${port}`, real: false, dir, port });
      try {
        await server.spawn();
        return server;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
  }

  constructor({ uri, real, dir = null, port = 0 }) {
    this.uri = uri;
    this.real = real;
    this.dir = dir;
    this.port = port;
    this.proc = null;
    this.seq = 0;
  }

  async spawn() {
    const data = path.join(this.dir, `data-${this.port}`);
    const args = [
      NX_LAUNCHER, '--port', String(this.port), '--data-dir', data,
      '--pid-file', path.join(this.dir, `nx-${this.port}.pid`), '--log-file', path.join(this.dir, `nx-${this.port}.log`),
    ];
    this.proc = spawnTracked(`nx-27017:${this.port}`, 'python3', args, { cwd: this.dir });
    const { exited, lines } = this.proc;
    let gone = null;
    exited.then((e) => (gone = e));
    await waitUntil(async () => {
      if (gone) throw new Error(`nx-27017 exited early (${JSON.stringify(gone)}; is it installed? pip install nx-27017):\n${lines.join('\n')}`);
      return listening(this.port);
    }, { timeout: 30000, interval: 100, message: `nx-27017 on port ${this.port} to accept connections` }).catch((err) => {
      if (!gone) this.proc.child.kill('SIGKILL');
      throw err;
    });
  }

  /** A database name unique to this call (tests never share one). */
  uniqueDbName(label = 'app') {
    return `fw_${label}_${process.pid}_${++this.seq}`;
  }

  /** The URI with `db` as its database. */
  uriFor(db) {
    return mongoUriWithDb(this.uri, db);
  }

  async destroy() {
    if (this.proc) {
      const { child, exited } = this.proc;
      this.proc = null;
      child.kill('SIGTERM');
      try {
        await withTimeout(exited, 5000, 'nx-27017 to exit after SIGTERM');
      } catch {
        child.kill('SIGKILL');
        await exited;
      }
    }
    if (this.dir) {
      fs.rmSync(this.dir, { recursive: true, force: true });
      tempDirs.delete(this.dir);
    }
  }
}

/**
 * Registers file-level hooks that start one MongoDB (or take MONGO_URI) and connect a client
 * to it before the tests, and close both after. Returns a holder whose `server` and `client`
 * (a connected MongoClient) are set once `before` has run.
 */
function useMongo() {
  const holder = { server: null, client: null };
  before(async () => {
    holder.server = await MongoServer.start();
    holder.client = new MongoClient(holder.server.uri, { serverSelectionTimeoutMS: 10000 });
    await holder.client.connect();
  });
  after(async () => {
    if (holder.client) await holder.client.close();
    if (holder.server) await holder.server.destroy();
  });
  return holder;
}

// ---------------------------------------------------------------------------------------------
// Workers

let workerSeq = 0;

/**
 * Spawns a worker on a queue: the Rust binary, or the Node reference worker when
 * `kind` (default: env WORKER) is 'node'. Both get the same command line and environment.
 * `processor: null` runs the Rust worker's POS pipeline (no test processor; the Node
 * reference worker has none).
 */
function startWorker({ redis, queueName, processor = 'noop', kind = WORKER, name, env = {}, args = [] }) {
  const workerName = name || `${kind}-${++workerSeq}`;
  const fullEnv = {
    ...process.env,
    ...FAST_ENV,
    REDIS_JOB_URL: redis.url(1),
    REDIS_CACHE_URL: redis.url(0),
    QUEUE_NAME: queueName,
    BULL_PREFIX: PREFIX,
    WORKER_NAME: workerName,
    ...env,
  };
  const argv = ['run', ...(processor === null ? [] : ['--processor', processor]), ...args];
  let command;
  let commandArgs;
  if (kind === 'node') {
    command = process.execPath;
    commandArgs = [WORKER_SCRIPT, ...argv];
  } else {
    if (!fs.existsSync(FETCH_WORKER_BIN)) {
      throw new Error(
        `fetch-worker binary not found at ${FETCH_WORKER_BIN}: build it ` +
        '(cargo build --release --features test-doubles: the tests use its test processors), ' +
        'point FETCH_WORKER_BIN at it, or run the suite with WORKER=node',
      );
    }
    command = FETCH_WORKER_BIN;
    commandArgs = argv;
  }
  const proc = spawnTracked(workerName, command, commandArgs, { env: fullEnv, cwd: EXAMPLE_DIR });
  let exit = null;
  proc.exited.then((e) => (exit = e));
  return {
    kind,
    name: workerName,
    pid: proc.child.pid,
    exited: proc.exited,
    get exit() {
      return exit;
    },
    logs: () => proc.lines.slice(),
    kill(signal = 'SIGKILL') {
      if (!exit) proc.child.kill(signal);
    },
    /** Sends `signal` and waits (bounded) for the exit; returns `{code, signal}`. */
    async stop(signal = 'SIGTERM', timeout = 15000) {
      if (!exit) proc.child.kill(signal);
      return withTimeout(proc.exited, timeout, `worker ${workerName} (pid ${proc.child.pid}) to exit after ${signal}`);
    },
  };
}

/**
 * Runs one of this package's CLIs (scripts/<name>.js) against a harness's queue; resolves to
 * `{code, stdout, stderr}`. Killed (and reported) after `timeout` ms.
 */
function runScript(h, script, args = [], { input, env = {}, timeout = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [path.join(EXAMPLE_DIR, 'scripts', script), ...args], {
      cwd: EXAMPLE_DIR,
      timeout,
      killSignal: 'SIGKILL',
      env: { ...process.env, REDIS_JOB_URL: h.redis.url(1), QUEUE_NAME: h.queueName, BULL_PREFIX: PREFIX, ...env },
    }, (err, stdout, stderr) => {
      children.delete(child);
      if (err && err.killed) {
        reject(new Error(`${script} ${args.join(' ')} did not finish within ${timeout} ms\nstderr: ${stderr}`));
      } else {
        resolve({ code: err ? err.code : 0, stdout, stderr });
      }
    });
    children.add(child);
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Events

/** Records every QueueEvents event of a queue, in stream order. */
class EventRecorder {
  constructor(queueEvents) {
    this.entries = [];
    for (const event of EVENT_NAMES) {
      queueEvents.on(event, (args, id) => {
        if (event === 'drained') {
          // QueueEvents emits drained with the stream id only.
          this.entries.push({ event, streamId: args, at: streamMs(args) });
        } else {
          this.entries.push({ event, ...args, streamId: id, at: streamMs(id) });
        }
      });
    }
  }

  /** Entries matching an event name and/or job id. */
  filter({ event, jobId } = {}) {
    return this.entries.filter((e) => (!event || e.event === event) && (jobId === undefined || e.jobId === String(jobId)));
  }

  /** Event names for one job, in order. */
  namesFor(jobId) {
    return this.filter({ jobId }).map((e) => e.event);
  }

  tail(n = 40) {
    return this.entries.slice(-n).map((e) => JSON.stringify(e)).join('\n');
  }
}

function streamMs(id) {
  return Number(String(id).split('-')[0]);
}

// ---------------------------------------------------------------------------------------------
// Per-test harness

let queueSeq = 0;

/**
 * Sets up one test: a unique queue on the file's redis-server, a Queue with the app's defaults,
 * a QueueEvents replaying the stream from its start, raw clients on db 1 (queue) and db 0
 * (cache), and worker spawning. Everything is torn down in `t.after`, even on failure.
 */
async function setup(t, redisHolder) {
  const redis = redisHolder.server || redisHolder;
  const queueName = `it-${process.pid}-${++queueSeq}-${Math.random().toString(36).slice(2, 8)}`;
  const overrides = { redisUrl: redis.url(1), queueName, prefix: PREFIX };
  const queue = createQueue(overrides);
  const queueEvents = createQueueEvents(overrides, { lastEventId: '0-0', blockingTimeout: 1000 });
  const db = new IORedis(redis.url(1), { maxRetriesPerRequest: null });
  const cache = new IORedis(redis.url(0), { maxRetriesPerRequest: null });
  for (const emitter of [queue, queueEvents, db, cache]) emitter.on('error', () => {});
  const events = new EventRecorder(queueEvents);
  const workers = [];

  const h = {
    redis,
    queueName,
    queue,
    queueEvents,
    events,
    db,
    cache,
    workers,
    bullmq,
    major,
    version,
    /** `bull:<queue>:<suffix>` */
    key: (suffix) => `${PREFIX}:${queueName}:${suffix}`,
    startWorker(opts = {}) {
      const worker = startWorker({ redis, queueName, ...opts });
      workers.push(worker);
      return worker;
    },
    job: (id) => bullmq.Job.fromId(queue, String(id)),
    counts: () => queue.getJobCounts('wait', 'paused', 'active', 'prioritized', 'delayed', 'completed', 'failed'),
    async describe() {
      const parts = [];
      try {
        parts.push(`counts: ${JSON.stringify(await h.counts())}`);
      } catch (err) {
        parts.push(`counts: unavailable (${err.message})`);
      }
      parts.push(`last events:\n${events.tail()}`);
      for (const w of workers) {
        parts.push(`worker ${w.name} (${w.kind}, pid ${w.pid}, exit ${JSON.stringify(w.exit)}) last log lines:\n${w.logs().slice(-25).join('\n')}`);
      }
      return parts.join('\n');
    },
    /** waitUntil with this test's state appended to the failure message. */
    waitUntil(probe, opts = {}) {
      return waitUntil(probe, { describe: h.describe, ...opts });
    },
    /** Waits until an event matching `pred` was recorded; returns it. */
    waitForEvent(pred, { timeout = 10000, message = 'event' } = {}) {
      return h.waitUntil(() => events.entries.find(pred), { timeout, message });
    },
    /** Waits until the job counts include `expected` (e.g. {completed: 3, failed: 0}). */
    waitForCounts(expected, { timeout = 15000 } = {}) {
      return h.waitUntil(async () => {
        const counts = await h.counts();
        return Object.entries(expected).every(([k, v]) => counts[k] === v) && counts;
      }, { timeout, message: `job counts ${JSON.stringify(expected)}` });
    },
  };

  t.after(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await Promise.allSettled(workers.map((w) => withTimeout(w.exited, 5000, `worker ${w.name} to die`)));
    await Promise.allSettled([
      withTimeout(queueEvents.close(), 5000, 'QueueEvents.close'),
      withTimeout(queue.close(), 5000, 'Queue.close'),
    ]);
    db.disconnect();
    cache.disconnect();
  });

  await withTimeout(queueEvents.waitUntilReady(), 10000, 'QueueEvents to connect');
  await withTimeout(queue.waitUntilReady(), 10000, 'Queue to connect');
  return h;
}

/**
 * Serves `app` (an Express app) on a free loopback port until the test `t` ends, then closes the
 * server and its open connections so no keep-alive socket holds the test file open. Returns the
 * base URL, `http://127.0.0.1:<port>`.
 */
async function listenApp(t, app) {
  const server = await new Promise((resolve, reject) => {
    const srv = app.listen(0, '127.0.0.1', () => resolve(srv));
    srv.on('error', reject);
  });
  t.after(() => new Promise((resolve) => {
    server.close(resolve);
    server.closeAllConnections();
  }));
  return `http://127.0.0.1:${server.address().port}`;
}

/**
 * Starts the app as it runs in production (`node src/server.js`) on a free port against the
 * harness' queue (`h`; null: `env` names the Redis URL and queue), with `env` on top
 * (MONGO_URI, API_TOKEN, OTEL_*…); killed after the test.
 * Resolves to `{url, logs(), stop()}` once it listens; `stop()` sends SIGTERM and waits for the
 * exit (the app then sends its last spans).
 */
async function startApp(t, h, env = {}) {
  const proc = spawnTracked('app', process.execPath, [path.join(EXAMPLE_DIR, 'src', 'server.js')], {
    cwd: EXAMPLE_DIR,
    env: {
      ...process.env,
      PORT: '0',
      ...(h ? { REDIS_JOB_URL: h.redis.url(1), QUEUE_NAME: h.queueName, BULL_PREFIX: PREFIX } : {}),
      ...env,
    },
  });
  let exit = null;
  proc.exited.then((e) => (exit = e));
  t.after(async () => {
    if (!exit) proc.child.kill('SIGKILL');
    await withTimeout(proc.exited, 5000, 'the app to die').catch(() => {});
  });
  const port = await waitUntil(() => {
    if (exit) throw new Error(`the app exited ${JSON.stringify(exit)}:\n${proc.lines.join('\n')}`);
    return proc.lines.map((l) => / listening .*\bport=(\d+)/.exec(l)?.[1]).find(Boolean);
  }, { timeout: 15000, message: 'the app to listen', describe: () => proc.lines.join('\n') });
  return {
    url: `http://127.0.0.1:${port}`,
    logs: () => proc.lines.slice(),
    async stop(timeout = 15000) {
      if (!exit) proc.child.kill('SIGTERM');
      return withTimeout(proc.exited, timeout, 'the app to exit after SIGTERM');
    },
  };
}

/**
 * Starts `fetch-worker fake-pos` (the binary the suite tests) on a free port, killed after the
 * test; resolves to its base URL, which it prints on standard output.
 */
async function startFakePos(t, dir) {
  const child = spawn(FETCH_WORKER_BIN, ['fake-pos', '--dir', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  t.after(() => {
    process.removeListener('exit', kill);
    kill();
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  return waitUntil(() => /listening on (http:\/\/[^/\s]+\/)/.exec(out)?.[1], {
    timeout: 15000,
    message: 'the fake POS server to print its address',
    describe: () => `stdout: ${out}\nstderr: ${err}`,
  });
}

module.exports = {
  WORKER,
  FETCH_WORKER_BIN,
  FAST_ENV,
  PREFIX,
  RedisServer,
  RedisCluster,
  useRedis,
  MongoServer,
  useMongo,
  freePort,
  setup,
  startWorker,
  runScript,
  listenApp,
  startApp,
  startFakePos,
  waitUntil,
  withTimeout,
  sleep,
};
