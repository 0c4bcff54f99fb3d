'use strict';
// The one place that knows how to reach the `fetch` queue: the Redis connection (db 1 by
// default), the queue name, the key prefix and the default job options the app enqueues with.
// Every script and test builds its Queue / QueueEvents / Worker connection through here.

const IORedis = require('ioredis');
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
 * Why a queue without a hash tag cannot run on a Redis Cluster, and what to set: the worker's
 * words (`fetch-worker run` says `invalid BULL_PREFIX: ` and this), so both sides read alike.
 */
const HASH_TAG_NEEDED = 'REDIS_JOB_URL is a Redis Cluster: every key of a queue must hash to one slot: put a '
  + 'hash tag in the prefix or the queue name, for example BULL_PREFIX={bull} (as BullMQ requires of '
  + "Node's Queue and Worker too)";

/**
 * True when every key of the queue (`prefix:queue:…`) carries a Redis Cluster hash tag: the
 * first `{` is followed, before the key's suffix, by a `}` with something between (Redis' own
 * rule, and the worker's check).
 */
function hasHashTag(prefix, queueName) {
  const head = `${prefix}:${queueName}:`;
  const open = head.indexOf('{');
  if (open < 0) return false;
  const close = head.indexOf('}', open + 1);
  return close > open + 1;
}

/**
 * REDIS_CLUSTER as the worker reads it (clap's boolish values): 1/true/yes/on/y/t, or
 * 0/false/no/off/n/f; unset or empty is off.
 */
function clusterFlag(env) {
  const raw = String(env.REDIS_CLUSTER ?? '').trim().toLowerCase();
  if (raw === '') return false;
  if (['1', 'true', 'yes', 'on', 'y', 't'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off', 'n', 'f'].includes(raw)) return false;
  throw new Error(`invalid REDIS_CLUSTER: expected 1 or 0 (true/false), got ${JSON.stringify(env.REDIS_CLUSTER)}`);
}

/** True when `url` (with REDIS_CLUSTER=1 for a plain redis:// or rediss:// one) is a Redis Cluster. */
function isCluster(url, env = process.env) {
  if (/^rediss?\+cluster:\/\//i.test(url)) return true;
  return clusterFlag(env) && /^rediss?:\/\//i.test(url);
}

/**
 * Throws, with the worker's message, when `s` (from [`settings`]) puts a queue without a hash
 * tag on a Redis Cluster: every BullMQ script would fail with CROSSSLOT.
 */
function checkSettings(s, env = process.env) {
  if (clusterFlag(env) && /^rediss?\+sentinel:\/\//i.test(s.redisUrl)) {
    throw new Error('REDIS_CLUSTER=1 takes a redis:// or rediss:// URL (or write redis+cluster://)');
  }
  if (isCluster(s.redisUrl, env) && !hasHashTag(s.prefix, s.queueName)) {
    throw new Error(`invalid BULL_PREFIX: ${HASH_TAG_NEEDED}`);
  }
  return s;
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
 * Splits the part of a multi-host URL after `scheme://` into its credentials, its
 * comma-separated `host[:port]` list and its path, the shape Sentinel and Cluster URLs share.
 * `bad` builds the error for a malformed address.
 */
function splitMultiHost(rest, defaultPort, what, bad) {
  const credentials = {};
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userinfo.indexOf(':');
    const user = colon >= 0 ? userinfo.slice(0, colon) : userinfo;
    const pass = colon >= 0 ? userinfo.slice(colon + 1) : '';
    if (user) credentials.username = decodeURIComponent(user);
    if (pass) credentials.password = decodeURIComponent(pass);
  }
  const slash = rest.indexOf('/');
  const hosts = (slash >= 0 ? rest.slice(0, slash) : rest).split(',').filter(Boolean).map((h) => {
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(h);
    if (!m) throw bad(`bad ${what} address ${h}`);
    const port = Number(m[2] || defaultPort);
    if (port < 1 || port > 65535) throw bad(`bad port in ${h}`);
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  });
  return { credentials, hosts, path: slash >= 0 ? rest.slice(slash + 1) : '' };
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
  const split = splitMultiHost(rest, 26379, 'sentinel', bad);
  const sentinels = split.hosts;
  const path = split.path.split('/').filter(Boolean);
  if (!sentinels.length) throw bad('no sentinel address');
  if (!path.length) throw bad('no master name');
  if (path.length > 2) throw bad('expected /master/db after the addresses');
  const db = path.length === 2 ? Number(path[1]) : 0;
  if (!Number.isInteger(db) || db < 0) throw bad('the database must be a number');
  const options = { sentinels, name: decodeURIComponent(path[0]), db, ...split.credentials };
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
 * `redis+cluster://[user:pass@]seed1:6379,seed2:6379[/0]` (or `rediss+cluster://`, or a plain
 * `redis://` / `rediss://` URL with REDIS_CLUSTER=1) into the seeds and the options of an
 * ioredis Cluster. A cluster has only database 0, so any other is refused (as the worker does).
 */
function clusterSpec(url, env) {
  const bad = (why) => new Error(`Cluster URL ${redact(url)}: ${why}`);
  const tls = /^rediss/i.test(url);
  let rest = url.slice(url.indexOf('://') + 3);
  if (/[?#]/.test(rest)) throw bad('takes no ?options');
  const split = splitMultiHost(rest, 6379, 'seed', bad);
  const path = split.path.replace(/\/+$/, '');
  if (path !== '' && path !== '0') throw bad('a Redis Cluster has only database 0: leave the path out or write /0');
  const nodes = split.hosts;
  if (!nodes.length) throw bad('no seed address (redis+cluster://host:6379,host2:6379)');
  const redisOptions = { ...split.credentials };
  const options = {
    redisOptions,
    // The cluster turns `ready` once CLUSTER INFO says cluster_state:ok: the app's /health
    // and its routes wait for `ready` (BullMQ takes `connect` too).
    enableReadyCheck: true,
  };
  if (tls) {
    redisOptions.tls = tlsOptions(env);
    // Managed clusters (ElastiCache and the like) announce names whose certificates name
    // them: connect by the name, not the address DNS gives, so verification holds.
    options.dnsLookup = (address, callback) => callback(null, address);
  }
  return { nodes, options };
}

/** The seeds and Cluster options for `url`, or null when it is not a Redis Cluster. */
function clusterOptions(url, env = process.env) {
  if (!isCluster(url, env)) return null;
  const asCluster = /^rediss?\+cluster:\/\//i.test(url) ? url : url.replace(/^(rediss?):\/\//i, '$1+cluster://');
  return clusterSpec(asCluster, env);
}

/**
 * An ioredis Cluster for `url` (see [`clusterOptions`]). `blocking` (a Worker or QueueEvents,
 * whose blocking reads must wait out a failover) sets `maxRetriesPerRequest: null` on every
 * node connection, which BullMQ requires of a Cluster handed to those classes; a Queue keeps
 * ioredis' default, so an add fails instead of waiting forever.
 */
function createCluster(url, env = process.env, { blocking = false } = {}) {
  const spec = clusterOptions(url, env);
  if (!spec) throw new Error(`not a Redis Cluster URL: ${redact(url)}`);
  const redisOptions = { ...spec.options.redisOptions };
  if (blocking) redisOptions.maxRetriesPerRequest = null;
  return new IORedis.Cluster(spec.nodes, { ...spec.options, redisOptions });
}

/**
 * Closes a Cluster this package opened: QUIT on every node (a disconnect when QUIT fails), and
 * resolves once it has ended (at most 5 s; then it is disconnected).
 */
async function closeCluster(cluster) {
  if (cluster.status === 'end') return;
  let timer;
  const ended = new Promise((resolve) => {
    cluster.once('end', resolve);
    timer = setTimeout(() => {
      cluster.disconnect();
      resolve();
    }, 5000);
  });
  try {
    await cluster.quit();
  } catch {
    cluster.disconnect();
  }
  if (cluster.status !== 'end') await ended;
  clearTimeout(timer);
}

/**
 * What a BullMQ class gets as `connection` for `url`: ioredis options (BullMQ opens and closes
 * its own connections), or in Cluster mode a Cluster instance this package owns. `close` ends
 * what this package opened (nothing outside Cluster mode): BullMQ leaves a Cluster handed to it
 * open (it closes only the duplicates it makes).
 */
function connectionFor(url, env = process.env, { blocking = false } = {}) {
  if (isCluster(url, env)) {
    const cluster = createCluster(url, env, { blocking });
    return { connection: cluster, close: () => closeCluster(cluster) };
  }
  return { connection: connectionOptions(url, env), close: async () => {} };
}

/** Where [`owning`] keeps what it closes (the Cluster, in Cluster mode), for checks. */
const OWNED_CONNECTION = Symbol('connection owned by this package');

/**
 * Makes `owner.close()` (a Queue, QueueEvents or Worker) also close the connection it was
 * given (`{connection, close}` from [`connectionFor`]), once BullMQ is done with it, so every
 * caller's shutdown closes the Cluster too.
 */
function owning(owner, { connection, close }) {
  owner[OWNED_CONNECTION] = connection;
  const closeOwner = owner.close.bind(owner);
  owner.close = async (...args) => {
    try {
      return await closeOwner(...args);
    } finally {
      await close();
    }
  };
  return owner;
}

/**
 * Turns a Redis URL into ioredis options, accepting the worker's forms: `redis://` and
 * `rediss://` (TLS, with the REDIS_TLS_* files), an ACL `user:password@`, and
 * `redis+sentinel://` / `rediss+sentinel://`. BullMQ wants an options object (it opens and
 * closes its own connections), not a URL string. A Cluster URL is refused here: a Cluster is
 * an instance ([`connectionFor`]).
 */
function connectionOptions(url, env = process.env) {
  if (/^rediss?\+sentinel:\/\//i.test(url)) return sentinelOptions(url, env);
  if (isCluster(url, env)) {
    // Validate, then say what to use: a Cluster needs an instance, not options.
    clusterOptions(url, env);
    throw new Error(`${redact(url)} is a Redis Cluster: open it with createCluster() or connectionFor()`);
  }
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new Error(`not a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL: ${redact(url)}`);
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

/**
 * A client of the cache database (see [`cacheConnectionOptions`]); in Cluster mode the
 * cluster itself (it has only database 0), as the worker does. Commands wait out a reconnect
 * (`maxRetriesPerRequest: null`). The caller closes it.
 */
function createCacheClient(env = process.env) {
  const url = env.REDIS_CACHE_URL || settings({}, env).redisUrl;
  if (isCluster(url, env)) return createCluster(url, env, { blocking: true });
  return new IORedis({ ...cacheConnectionOptions(env), maxRetriesPerRequest: null });
}

/**
 * A producer-side Queue with the app's default job options. In Cluster mode it owns its
 * Cluster: `queue.close()` closes it too. `telemetry` (from src/telemetry.js startTracing)
 * makes BullMQ open a span per add and carry its context to the worker in the job's `tm`.
 */
function createQueue(overrides = {}, env = process.env, { telemetry } = {}) {
  const s = checkSettings(settings(overrides, env), env);
  const owned = connectionFor(s.redisUrl, env);
  const queue = new bullmq.Queue(s.queueName, {
    connection: owned.connection,
    prefix: s.prefix,
    defaultJobOptions: DEFAULT_JOB_OPTIONS,
    ...(telemetry ? { telemetry } : {}),
  });
  return owning(queue, owned);
}

/**
 * A QueueEvents listener. `opts` are passed through (e.g. `lastEventId: '0-0'` to replay the
 * stream from its start instead of only seeing events after the first XREAD). In Cluster mode
 * `close()` also closes its Cluster.
 */
function createQueueEvents(overrides = {}, opts = {}, env = process.env) {
  const s = checkSettings(settings(overrides, env), env);
  const owned = connectionFor(s.redisUrl, env, { blocking: true });
  const queueEvents = new bullmq.QueueEvents(s.queueName, {
    connection: owned.connection,
    prefix: s.prefix,
    ...opts,
  });
  return owning(queueEvents, owned);
}

module.exports = {
  DEFAULT_JOB_OPTIONS,
  RETENTION,
  HASH_TAG_NEEDED,
  OWNED_CONNECTION,
  settings,
  checkSettings,
  hasHashTag,
  isCluster,
  clusterOptions,
  createCluster,
  connectionFor,
  owning,
  connectionOptions,
  cacheConnectionOptions,
  createCacheClient,
  createQueue,
  createQueueEvents,
};
