'use strict';
// Settings shared by fill.js, drain.js and watch.js: all come from the environment that
// bench/queue.sh sets, so each program can also be run by hand.

function required(name) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`${name} must be set`);
  }
  return value;
}

function number(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    if (fallback === undefined) throw new Error(`${name} must be set`);
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`${name}=${JSON.stringify(raw)} is not a number`);
  return value;
}

// REDIS_URL is redis://HOST:PORT/DB; BullMQ gets plain options so that it makes (and
// duplicates) its own connections with its usual settings. A redis+cluster://H1:P1,H2:P2 URL
// (bench/queue.sh's Cluster run) gives an ioredis Cluster instead: see cluster().
function connection() {
  if (isCluster()) return cluster();
  const url = new URL(required('REDIS_URL'));
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  return {
    host: url.hostname,
    port: Number(url.port || 6379),
    db,
    maxRetriesPerRequest: null,
  };
}

/** True when REDIS_URL names a Redis Cluster (redis+cluster://seed1,seed2). */
function isCluster() {
  return /^redis\+cluster:\/\//.test(required('REDIS_URL'));
}

// A new ioredis Cluster on REDIS_URL's seeds, which the caller closes (BullMQ leaves a client
// it is handed open). maxRetriesPerRequest: null on every node, as BullMQ requires of a
// Worker's connection; ready once CLUSTER INFO says ok.
function cluster() {
  const Redis = require('ioredis');
  const hosts = required('REDIS_URL').replace(/^redis\+cluster:\/\//, '').replace(/\/.*$/, '');
  const nodes = hosts.split(',').map((h) => {
    const [host, port] = h.split(':');
    return { host, port: Number(port || 6379) };
  });
  return new Redis.Cluster(nodes, { redisOptions: { maxRetriesPerRequest: null }, enableReadyCheck: true });
}

/** Closes `connection` when it is a Cluster this module made (options need nothing). */
async function closeConnection(connection) {
  if (connection && connection.isCluster) await connection.quit().catch(() => connection.disconnect());
}

function settings() {
  return {
    connection: connection(),
    queueName: required('QUEUE_NAME'),
    prefix: process.env.BULL_PREFIX || 'bull',
    jobs: number('N'),
  };
}

function fail(program, err) {
  process.stderr.write(`${program}: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
}

module.exports = { required, number, connection, isCluster, cluster, closeConnection, settings, fail };
