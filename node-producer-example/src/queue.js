'use strict';
// The one place that knows how to reach the `fetch` queue: the Redis connection (db 1 by
// default), the queue name, the key prefix and the default job options the app enqueues with.
// Every script and test builds its Queue / QueueEvents / Worker connection through here.

const { bullmq } = require('./bullmq');

/**
 * How long finished jobs stay in Redis: completed ones 7 days (at most 10,000), failed ones 30
 * days. Under `noeviction` a queue that keeps everything grows until Redis refuses writes and
 * the queue halts. POST /missing sets them on every job; the same file is the worker's REMOVE_ON_COMPLETE / REMOVE_ON_FAIL default
 * (a Rust test checks they agree).
 */
const RETENTION = Object.freeze(require('./retention.json'));

/**
 * Job options the app adds to every job unless the caller overrides them. Retention
 * ([`RETENTION`]) is added by POST /missing, not here: the interop scripts and benchmarks
 * count finished jobs and must see every one.
 */
const DEFAULT_JOB_OPTIONS = Object.freeze({
  attempts: 3,
  backoff: Object.freeze({ type: 'exponential', delay: 1000 }),
});

/**
 * Queue settings from the environment (the app's variable names), with explicit overrides.
 * @param {{redisUrl?: string, queueName?: string, prefix?: string}} [overrides]
 */
function settings(overrides = {}, env = process.env) {
  return {
    redisUrl: overrides.redisUrl || env.REDIS_JOB_URL || 'redis://127.0.0.1:6379/1',
    queueName: overrides.queueName || env.QUEUE_NAME || 'fetch',
    prefix: overrides.prefix || env.BULL_PREFIX || 'bull',
  };
}

/**
 * Turns a `redis://[user:pass@]host:port/db` (or `rediss://`) URL into ioredis options.
 * BullMQ wants an options object (it opens and closes its own connections), not a URL string.
 */
function connectionOptions(url) {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new Error(`not a redis:// or rediss:// URL: ${url}`);
  }
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new Error(`bad database number in ${url}`);
  const options = { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379), db };
  if (u.username) options.username = decodeURIComponent(u.username);
  if (u.password) options.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') options.tls = {};
  return options;
}

/** A producer-side Queue with the app's default job options. */
function createQueue(overrides = {}) {
  const s = settings(overrides);
  return new bullmq.Queue(s.queueName, {
    connection: connectionOptions(s.redisUrl),
    prefix: s.prefix,
    defaultJobOptions: DEFAULT_JOB_OPTIONS,
  });
}

/**
 * A QueueEvents listener. `opts` are passed through (e.g. `lastEventId: '0-0'` to replay the
 * stream from its start instead of only seeing events after the first XREAD).
 */
function createQueueEvents(overrides = {}, opts = {}) {
  const s = settings(overrides);
  return new bullmq.QueueEvents(s.queueName, {
    connection: connectionOptions(s.redisUrl),
    prefix: s.prefix,
    ...opts,
  });
}

module.exports = {
  DEFAULT_JOB_OPTIONS,
  RETENTION,
  settings,
  connectionOptions,
  createQueue,
  createQueueEvents,
};
