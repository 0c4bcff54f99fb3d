#!/usr/bin/env node
'use strict';
// Node reference worker: the same command line, environment and processors as the Rust
// `fetch-worker run`, built on BullMQ's own Worker. Every interop test can run against it
// (WORKER=node) to prove the test itself is right, and the mixed-fleet test runs it beside the
// Rust binary.
//
//   node scripts/worker.js run --processor noop|sleep|fail [--until-drained] [--kebab-flag value]…
//
// Every setting is an environment variable (REDIS_JOB_URL, QUEUE_NAME, …) and also a
// `--kebab-case` flag; a flag wins over the environment. Logs go to stderr.

const { parseArgs } = require('node:util');
const { bullmq, version } = require('../src/bullmq');
const {
  settings, checkSettings, connectionFor, owning, createCacheClient, createQueue,
} = require('../src/queue');
const { startTracing } = require('../src/telemetry');

/** name → [default, parser]. Defaults match the Rust binary's. */
const SETTINGS = {
  REDIS_JOB_URL: ['redis://127.0.0.1:6379/1', String],
  // Unset: database 0 of the job server, as in the Rust binary.
  REDIS_CACHE_URL: [undefined, String],
  // 1: REDIS_JOB_URL (and REDIS_CACHE_URL) are seeds of a Redis Cluster, as in the Rust binary.
  REDIS_CLUSTER: [undefined, String],
  QUEUE_NAME: ['fetch', String],
  BULL_PREFIX: ['bull', String],
  JOB_CONCURRENCY: [1, positiveInt],
  LOCK_DURATION_MS: [30000, positiveInt],
  STALLED_INTERVAL_MS: [30000, positiveInt],
  MAX_STALLED_COUNT: [1, nonNegativeInt],
  RESULT_TTL_SECONDS: [86400, positiveInt],
  WORKER_NAME: [undefined, String],
  SHUTDOWN_TIMEOUT_MS: [30000, nonNegativeInt],
  DRAIN_DELAY_MS: [5000, positiveInt],
  REMOVE_ON_COMPLETE: [undefined, keepJobs],
  REMOVE_ON_FAIL: [undefined, keepJobs],
  RATE_LIMIT_MAX: [undefined, positiveInt],
  RATE_LIMIT_DURATION_MS: [undefined, positiveInt],
  METRICS_MAX_DATA_POINTS: [undefined, positiveInt],
  LOG_FORMAT: ['pretty', oneOf('pretty', 'json')],
  PROCESSOR: ['noop', oneOf('noop', 'sleep', 'fail')],
};

function positiveInt(s) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Error(`expected an integer >= 1, got ${s}`);
  return n;
}

function nonNegativeInt(s) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new Error(`expected an integer >= 0, got ${s}`);
  return n;
}

function oneOf(...allowed) {
  return (s) => {
    if (!allowed.includes(s)) throw new Error(`expected one of ${allowed.join('|')}, got ${s}`);
    return s;
  };
}

/**
 * Worker-level retention default: `true`, `false`, `N` or `{"age":s,"count":n}` (JSON), turned
 * into the KeepJobs object a Node Worker accepts (`true` = delete at once, `false` = keep all).
 */
function keepJobs(s) {
  const v = JSON.parse(s);
  if (v === true) return { count: 0 };
  if (v === false) return { count: -1 };
  if (Number.isInteger(v)) return { count: v };
  if (v && typeof v === 'object' && !Array.isArray(v)) return v;
  throw new Error(`expected true, false, a count or {"age":s,"count":n}, got ${s}`);
}

/** Parses `run [--kebab-flag value | --kebab-flag=value | --until-drained]…` over the environment. */
function parseCommandLine(argv, env) {
  const kebab = (name) => name.toLowerCase().replace(/_/g, '-');
  const options = { 'until-drained': { type: 'boolean', default: false } };
  for (const name of Object.keys(SETTINGS)) options[kebab(name)] = { type: 'string' };
  const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true });
  if (positionals.length !== 1 || positionals[0] !== 'run') {
    throw new Error('usage: worker.js run --processor noop|sleep|fail [--until-drained]');
  }
  const config = { untilDrained: values['until-drained'] };
  for (const [name, [fallback, parse]] of Object.entries(SETTINGS)) {
    const value = values[kebab(name)] ?? env[name];
    try {
      config[name] = value === undefined || value === '' ? fallback : parse(value);
    } catch (err) {
      throw new Error(`invalid ${name}: ${err.message}`);
    }
  }
  if ((config.RATE_LIMIT_MAX === undefined) !== (config.RATE_LIMIT_DURATION_MS === undefined)) {
    throw new Error('RATE_LIMIT_MAX and RATE_LIMIT_DURATION_MS must be given together');
  }
  return config;
}

function makeLogger(format, fields) {
  return (level, msg, extra = {}) => {
    const all = { ...fields, ...extra };
    if (format === 'json') {
      process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), level, msg, ...all })}\n`);
    } else {
      const kv = Object.entries(all).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
      process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${msg} ${kv.join(' ')}\n`);
    }
  };
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const dataOf = (job) => (job.data && typeof job.data === 'object' ? job.data : {});

/** The running Worker, for processors that call its methods (`rateLimit`). */
let currentWorker = null;

/** The three test processors, identical in behaviour to the Rust binary's. */
const PROCESSORS = {
  async noop(job) {
    return { processed: true, echo: job.data };
  },

  async sleep(job, token) {
    const d = dataOf(job);
    // data.delayMs: the first run parks the job in delayed (DelayedError); the next one sleeps.
    if (d.delayMs !== undefined && d.delayMs !== null && job.attemptsStarted <= 1) {
      const delayMs = Math.max(0, Math.floor(Number(d.delayMs) || 0));
      await job.log(`delayed for ${delayMs} ms`);
      await job.moveToDelayed(Date.now() + delayMs, token);
      throw new bullmq.DelayedError();
    }
    // data.rateLimitMs: the first run rate-limits the queue and hands the job back
    // (worker.rateLimit + RateLimitError); the next one sleeps.
    if (d.rateLimitMs !== undefined && d.rateLimitMs !== null && job.attemptsStarted <= 1) {
      await currentWorker.rateLimit(Math.max(0, Math.floor(Number(d.rateLimitMs) || 0)));
      throw bullmq.Worker.RateLimitError();
    }
    // data.waitChildren: a run that finds a pending child parks the job in waiting-children.
    if (d.waitChildren === true && (await job.moveToWaitingChildren(token))) {
      throw new bullmq.WaitingChildrenError();
    }
    const ms = Math.max(0, Math.floor(Number(d.ms) || 0));
    await job.log(`sleeping ${ms} ms`);
    await job.updateProgress(0);
    if (ms > 0) {
      for (let step = 1; step <= 10; step++) {
        await delay(ms / 10);
        if (step < 10) await job.updateProgress(step * 10);
      }
    }
    await job.updateProgress(100);
    await job.log(`slept ${ms} ms`);
    if (d.setData !== undefined) await job.updateData(d.setData);
    // data.returnChildren: the children's return values, keyed by child job key.
    if (d.returnChildren === true) return { slept: ms, children: await job.getChildrenValues() };
    return { slept: ms };
  },

  async fail(job) {
    const d = dataOf(job);
    const attempt = job.attemptsMade + 1;
    if (typeof d.succeedOnAttempt === 'number' && attempt >= d.succeedOnAttempt) {
      return { succeededOnAttempt: d.succeedOnAttempt };
    }
    const message = typeof d.message === 'string' ? d.message : 'failed by request';
    if (d.fatal === true) throw new bullmq.UnrecoverableError(message);
    if (d.discard === true) {
      // bullmq 6 dropped job.discard(); an UnrecoverableError is its way to stop retries.
      if (typeof job.discard !== 'function') throw new bullmq.UnrecoverableError(message);
      job.discard();
    }
    throw new Error(message);
  },
};

async function main() {
  let config;
  let queueSettings;
  let connection;
  let cache;
  // The job and cache URLs as the settings resolved them (a flag wins over the environment).
  const env = { ...process.env };
  try {
    config = parseCommandLine(process.argv.slice(2), process.env);
    env.REDIS_JOB_URL = config.REDIS_JOB_URL;
    for (const name of ['REDIS_CACHE_URL', 'REDIS_CLUSTER']) {
      if (config[name] === undefined) delete env[name];
      else env[name] = config[name];
    }
    queueSettings = checkSettings(settings({
      redisUrl: config.REDIS_JOB_URL,
      queueName: config.QUEUE_NAME,
      prefix: config.BULL_PREFIX,
    }, env), env);
    // The Worker's connection (in Cluster mode a Cluster this script owns) and the cache's.
    connection = connectionFor(queueSettings.redisUrl, env, { blocking: true });
    cache = createCacheClient(env);
  } catch (err) {
    process.stderr.write(`worker.js: ${err.message}\n`);
    process.exit(2);
  }
  const log = makeLogger(config.LOG_FORMAT, { queue: queueSettings.queueName, worker: config.WORKER_NAME || `node-${process.pid}` });
  cache.on('error', (err) => log('warn', 'cache connection error', { error: err.message }));

  // OTEL_EXPORTER_OTLP_ENDPOINT set: BullMQ's own Worker spans (`process <queue>`, continuing
  // the producer's trace from the job's `tm`), as the Rust worker's are.
  const tracing = startTracing({ serviceName: 'fetch-worker' });

  const worker = owning(new bullmq.Worker(queueSettings.queueName, PROCESSORS[config.PROCESSOR], {
    connection: connection.connection,
    prefix: queueSettings.prefix,
    concurrency: config.JOB_CONCURRENCY,
    lockDuration: config.LOCK_DURATION_MS,
    stalledInterval: config.STALLED_INTERVAL_MS,
    maxStalledCount: config.MAX_STALLED_COUNT,
    drainDelay: config.DRAIN_DELAY_MS / 1000,
    ...(config.WORKER_NAME ? { name: config.WORKER_NAME } : {}),
    ...(config.REMOVE_ON_COMPLETE ? { removeOnComplete: config.REMOVE_ON_COMPLETE } : {}),
    ...(config.REMOVE_ON_FAIL ? { removeOnFail: config.REMOVE_ON_FAIL } : {}),
    ...(config.METRICS_MAX_DATA_POINTS ? { metrics: { maxDataPoints: config.METRICS_MAX_DATA_POINTS } } : {}),
    ...(config.RATE_LIMIT_MAX ? { limiter: { max: config.RATE_LIMIT_MAX, duration: config.RATE_LIMIT_DURATION_MS } } : {}),
    ...(tracing ? { telemetry: tracing.telemetry } : {}),
  }), connection);

  currentWorker = worker;

  const resultKey = (jobId) => `fetch-worker:result:${queueSettings.queueName}:${jobId}`;
  const writeResult = (jobId, value) =>
    cache
      .set(resultKey(jobId), JSON.stringify(value), 'EX', config.RESULT_TTL_SECONDS)
      .catch((err) => log('warn', 'writing the result failed', { job_id: jobId, error: err.message }));

  worker.on('active', (job) => log('info', 'job started', { job_id: job.id, attempt: job.attemptsMade + 1 }));
  worker.on('completed', (job, result) => {
    log('info', 'job completed', { job_id: job.id });
    writeResult(job.id, { status: 'completed', result });
  });
  worker.on('failed', (job, err) => {
    if (!job) return;
    // A retried attempt leaves finishedOn unset; only the final failure is a result.
    const final = Boolean(job.finishedOn);
    log(final ? 'warn' : 'info', final ? 'job failed' : 'job attempt failed, will retry', { job_id: job.id, error: err.message });
    if (final) writeResult(job.id, { status: 'failed', error: err.message });
  });
  worker.on('stalled', (jobId) => log('warn', 'job stalled, moved back to wait', { job_id: jobId }));
  worker.on('error', (err) => log('error', 'worker error', { error: err.message }));

  let drainQueue = null;
  let stopping = null;
  const stop = (reason) => {
    if (stopping) return stopping;
    stopping = (async () => {
      log('info', 'shutting down', { reason });
      const closed = worker.close().then(() => 'closed');
      const timedOut = delay(config.SHUTDOWN_TIMEOUT_MS).then(() => 'timeout');
      if ((await Promise.race([closed, timedOut])) === 'timeout') {
        // Jobs still running keep their locks until they expire; stalled recovery takes them.
        log('warn', 'shutdown timeout reached, leaving in-flight jobs to stalled recovery');
        process.exit(0);
      }
      if (drainQueue) await drainQueue.close().catch(() => {});
      await cache.quit().catch(() => {});
      if (tracing) await Promise.race([tracing.shutdown().catch(() => {}), delay(5000)]);
      log('info', 'stopped');
      process.exit(0);
    })();
    return stopping;
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  if (config.untilDrained) {
    drainQueue = createQueue(queueSettings, env);
    drainQueue.on('error', (err) => log('warn', 'queue connection error', { error: err.message }));
    const check = async () => {
      const counts = await drainQueue.getJobCounts('wait', 'paused', 'prioritized', 'delayed', 'active');
      const left = Object.values(counts).reduce((a, b) => a + b, 0);
      if (left === 0) return stop('queue drained');
      setTimeout(() => check().catch(retry), 200);
    };
    const retry = (err) => {
      log('warn', 'drain check failed', { error: err.message });
      setTimeout(() => check().catch(retry), 500);
    };
    check().catch(retry);
  }

  await worker.waitUntilReady();
  log('info', 'worker started', {
    processor: config.PROCESSOR,
    bullmq: version,
    concurrency: config.JOB_CONCURRENCY,
  });
}

main().catch((err) => {
  process.stderr.write(`worker.js: ${err.stack || err}\n`);
  process.exit(1);
});
