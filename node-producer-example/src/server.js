#!/usr/bin/env node
'use strict';
// Starts the app (src/app.js) from the environment:
//
//   PORT            listen port (default 3000)
//   REDIS_JOB_URL   the queue's Redis (default redis://127.0.0.1:6379/1): redis://, rediss://,
//                   redis+sentinel://, redis+cluster:// (or REDIS_CLUSTER=1), as the worker
//                   takes them; QUEUE_NAME, BULL_PREFIX (a hash tag such as {bull} on a Cluster)
//   MONGO_URI       default mongodb://127.0.0.1:27017/biggs (database from the path)
//   BRANCHES        a file of branch codes one per line, or a comma list (default: legacy's 28)
//   BOARD_USER, BOARD_PASSWORD   Bull Board's basic auth; both unset disables the board. With
//                   NODE_ENV=production a default or short password (< 12) refuses to start
//   API_TOKEN       the bearer token of /missing and /jobs (at least 16 characters); required
//                   unless API_AUTH=off (local demos only; refused with NODE_ENV=production)
//   POST_RATE_PER_MINUTE  POST /missing requests per client per minute (default 30)
//   OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME (default fetch-app)  traces over OTLP/HTTP:
//                   a server span per request, BullMQ's add spans under it, the context handed
//                   to the worker in each job (src/telemetry.js); unset, tracing is off
//
// SIGTERM / SIGINT: stop accepting connections, let in-flight requests finish (up to
// SHUTDOWN_TIMEOUT_MS, default 10000), close the queue and MongoDB, exit 0.

const { MongoClient } = require('mongodb');
const { createApp, withTimeout } = require('./app');
const { weakBoardPassword } = require('./board');
const { createQueue, settings, checkSettings } = require('./queue');
const { loadBranches } = require('./branches');
const { version: bullmqVersion } = require('./bullmq');
const { log } = require('./log');
const { startTracing } = require('./telemetry');
const { version: appVersion } = require('../package.json');

const DEFAULT_MONGO_URI = 'mongodb://127.0.0.1:27017/biggs';

/** Reads and checks the environment; throws with a message naming the variable. */
function config(env = process.env) {
  const port = env.PORT === undefined || env.PORT === '' ? 3000 : Number(env.PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number, got ${JSON.stringify(env.PORT)}`);
  const shutdownTimeoutMs = env.SHUTDOWN_TIMEOUT_MS ? Number(env.SHUTDOWN_TIMEOUT_MS) : 10000;
  if (!Number.isInteger(shutdownTimeoutMs) || shutdownTimeoutMs < 0) {
    throw new Error(`SHUTDOWN_TIMEOUT_MS must be a number of milliseconds, got ${JSON.stringify(env.SHUTDOWN_TIMEOUT_MS)}`);
  }
  const user = env.BOARD_USER || '';
  const password = env.BOARD_PASSWORD || '';
  if (Boolean(user) !== Boolean(password)) {
    throw new Error(`${user ? 'BOARD_USER' : 'BOARD_PASSWORD'} is set but ${user ? 'BOARD_PASSWORD' : 'BOARD_USER'} is not: set both to enable Bull Board, or neither to disable it`);
  }
  const production = env.NODE_ENV === 'production';
  if (user && production) {
    const weak = weakBoardPassword({ user, password });
    if (weak) throw new Error(`${weak} (NODE_ENV=production): choose a long random one`);
  }
  let apiToken = env.API_TOKEN || '';
  if (env.API_AUTH === 'off') {
    if (production) throw new Error('API_AUTH=off is for local demos and refused with NODE_ENV=production');
    apiToken = null;
  } else if (!apiToken) {
    throw new Error('API_TOKEN is required (clients send Authorization: Bearer <API_TOKEN>); API_AUTH=off disables it for local demos');
  } else if (apiToken.length < 16 || /\s/.test(apiToken)) {
    throw new Error('API_TOKEN must be at least 16 characters without spaces');
  }
  const postRate = env.POST_RATE_PER_MINUTE ? Number(env.POST_RATE_PER_MINUTE) : 30;
  if (!Number.isInteger(postRate) || postRate < 1) {
    throw new Error(`POST_RATE_PER_MINUTE must be a positive integer, got ${JSON.stringify(env.POST_RATE_PER_MINUTE)}`);
  }
  return {
    port,
    shutdownTimeoutMs,
    apiToken,
    postRate: { max: postRate, windowMs: 60000 },
    mongoUri: env.MONGO_URI || DEFAULT_MONGO_URI,
    branches: loadBranches(env.BRANCHES),
    boardAuth: user ? { user, password } : null,
    // A Redis Cluster queue without a hash tag is refused here, with the worker's message.
    queue: checkSettings(settings({}, env), env),
  };
}

/**
 * `mongodb://user:secret@host/db` → `mongodb://user:***@host/db` for logs; a password without
 * a user (`redis://:secret@host/1`, compose's form) is hidden too.
 */
function redact(uri) {
  return uri.replace(/\/\/([^:/@]*):([^@/]*)@/, '//$1:***@');
}

async function main() {
  let cfg;
  try {
    cfg = config();
  } catch (err) {
    log('error', `bad configuration: ${err.message}`);
    process.exit(2);
  }

  // Before the queue: BullMQ's spans need the provider registered.
  const tracing = startTracing({ serviceName: 'fetch-app', version: appVersion });
  if (tracing) log('info', 'tracing on: spans go to the OTLP endpoint');
  const queue = createQueue({}, process.env, { telemetry: tracing && tracing.telemetry });
  queue.on('error', (err) => log('warn', 'Redis connection error', { error: err.message }));
  const mongo = new MongoClient(cfg.mongoUri, { serverSelectionTimeoutMS: 5000, appName: 'fetch-app' });
  const mongoDb = mongo.db();
  // The driver connects on first use; connecting now only reports early. Routes and /health
  // work (or answer 503) whatever this says.
  mongo.connect().then(
    () => log('info', 'MongoDB connected', { uri: redact(cfg.mongoUri), db: mongoDb.databaseName }),
    (err) => log('warn', 'MongoDB not reachable yet', { uri: redact(cfg.mongoUri), error: err.message }),
  );

  if (!cfg.boardAuth) log('warn', 'Bull Board disabled: BOARD_USER and BOARD_PASSWORD are not set');
  if (cfg.apiToken === null) log('warn', 'API_AUTH=off: /missing and /jobs answer anyone (local demos only)');
  const app = createApp({
    queue, mongoDb, branches: cfg.branches, boardAuth: cfg.boardAuth, log, apiToken: cfg.apiToken, postRate: cfg.postRate,
    tracer: tracing && tracing.tracer,
  });

  const server = app.listen(cfg.port);
  server.on('error', (err) => {
    log('error', `cannot listen on port ${cfg.port}: ${err.message}`);
    process.exit(1);
  });
  server.on('listening', () => {
    log('info', 'listening', {
      port: server.address().port,
      queue: cfg.queue.queueName,
      redis: redact(cfg.queue.redisUrl),
      bullmq: bullmqVersion,
      branches: cfg.branches.length,
      board: cfg.boardAuth ? '/admin/queues' : 'disabled',
    });
  });

  let stopping = false;
  const shutdown = async (signal) => {
    if (stopping) {
      log('warn', `${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    log('info', `${signal}: shutting down`, { timeoutMs: cfg.shutdownTimeoutMs });
    const force = setTimeout(() => {
      log('warn', 'requests still open after the shutdown timeout: closing their connections');
      server.closeAllConnections();
    }, cfg.shutdownTimeoutMs);
    force.unref();
    await new Promise((resolve) => {
      server.close(resolve);
      server.closeIdleConnections();
    });
    clearTimeout(force);
    const closing = await Promise.allSettled([
      withTimeout(queue.close(), 5000, 'closing the queue'),
      withTimeout(mongo.close(), 5000, 'closing MongoDB'),
    ]);
    // Last, so the spans of the requests that just finished are sent too.
    if (tracing) closing.push(...await Promise.allSettled([withTimeout(tracing.shutdown(), 5000, 'sending the last spans')]));
    for (const result of closing) {
      if (result.status === 'rejected') log('warn', 'closing a connection failed', { error: result.reason.message });
    }
    log('info', 'stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

if (require.main === module) {
  main().catch((err) => {
    log('error', `fatal: ${err.stack || err.message}`);
    process.exit(1);
  });
}

module.exports = { config, redact };
