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
// duplicates) its own connections with its usual settings.
function connection() {
  const url = new URL(required('REDIS_URL'));
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  return {
    host: url.hostname,
    port: Number(url.port || 6379),
    db,
    maxRetriesPerRequest: null,
  };
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

module.exports = { required, number, connection, settings, fail };
