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
 * TLS options for ioredis from the same variables the worker reads: REDIS_TLS_CA_FILE (the CA
 * that signed the server's certificate; Node's own roots when unset), REDIS_TLS_CERT_FILE and
 * REDIS_TLS_KEY_FILE (a client certificate). Verification stays on.
 */
function tlsOptions(env) {
  const fs = require('node:fs');
  const tls = {};
  if (env.REDIS_TLS_CA_FILE) tls.ca = fs.readFileSync(env.REDIS_TLS_CA_FILE);
  if (Boolean(env.REDIS_TLS_CERT_FILE) !== Boolean(env.REDIS_TLS_KEY_FILE)) {
    throw new Error('REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together');
  }
  if (env.REDIS_TLS_CERT_FILE) {
    tls.cert = fs.readFileSync(env.REDIS_TLS_CERT_FILE);
    tls.key = fs.readFileSync(env.REDIS_TLS_KEY_FILE);
  }
  return tls;
}

/** A URL without its credentials and query, for error messages. */
function redact(url) {
  return String(url).replace(/\/\/[^/]*@/, '//***@').replace(/[?#].*$/, '?***');
}

/**
 * `redis+sentinel://[user:pass@]s1:26379,s2:26379/mymaster/db[?sentinelUsername=…&sentinelPassword=…]`
 * (or `rediss+sentinel://`) into ioredis' Sentinel options: the worker's form, so one variable
 * switches both sides.
 */
function sentinelOptions(url, env) {
  const bad = (why) => new Error(`Sentinel URL ${redact(url)}: ${why}`);
  const tls = url.startsWith('rediss+');
  let rest = url.slice(url.indexOf('://') + 3);
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  let userinfo = null;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
  }
  const slash = rest.indexOf('/');
  const hosts = slash >= 0 ? rest.slice(0, slash) : rest;
  const path = (slash >= 0 ? rest.slice(slash + 1) : '').split('/').filter(Boolean);
  const sentinels = hosts.split(',').filter(Boolean).map((h) => {
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(h);
    if (!m) throw bad(`bad sentinel address ${h}`);
    return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2] || 26379) };
  });
  if (!sentinels.length) throw bad('no sentinel address');
  if (!path.length) throw bad('no master name');
  if (path.length > 2) throw bad('expected /master/db after the addresses');
  const db = path.length === 2 ? Number(path[1]) : 0;
  if (!Number.isInteger(db) || db < 0) throw bad('the database must be a number');
  const options = { sentinels, name: decodeURIComponent(path[0]), db };
  if (userinfo !== null) {
    const colon = userinfo.indexOf(':');
    const user = colon >= 0 ? userinfo.slice(0, colon) : userinfo;
    const pass = colon >= 0 ? userinfo.slice(colon + 1) : '';
    if (user) options.username = decodeURIComponent(user);
    if (pass) options.password = decodeURIComponent(pass);
  }
  for (const [key, value] of new URLSearchParams(query)) {
    if (key === 'sentinelUsername' || key === 'sentinelPassword') options[key] = value;
    else throw bad(`unknown option ${key} (known: sentinelUsername, sentinelPassword)`);
  }
  if (tls) {
    options.tls = tlsOptions(env);
    options.sentinelTLS = tlsOptions(env);
    options.enableTLSForSentinelMode = true;
  }
  return options;
}

/**
 * Turns a Redis URL into ioredis options, accepting the worker's forms: `redis://` and
 * `rediss://` (TLS, with the REDIS_TLS_* files), an ACL `user:password@`, and
 * `redis+sentinel://` / `rediss+sentinel://`. BullMQ wants an options object (it opens and
 * closes its own connections), not a URL string.
 */
function connectionOptions(url, env = process.env) {
  if (/^rediss?\+sentinel:\/\//i.test(url)) return sentinelOptions(url, env);
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new Error(`not a redis://, rediss:// or redis+sentinel:// URL: ${redact(url)}`);
  }
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new Error(`bad database number in ${redact(url)}`);
  const options = { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379), db };
  if (u.username) options.username = decodeURIComponent(u.username);
  if (u.password) options.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') options.tls = tlsOptions(env);
  return options;
}

/**
 * The cache database's options: REDIS_CACHE_URL, else database 0 of the job server (the
 * worker's default too).
 */
function cacheConnectionOptions(env = process.env) {
  if (env.REDIS_CACHE_URL) return connectionOptions(env.REDIS_CACHE_URL, env);
  return { ...connectionOptions(settings({}, env).redisUrl, env), db: 0 };
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
  cacheConnectionOptions,
  createQueue,
  createQueueEvents,
};
