'use strict';

// Traces across the stack: a job carrying a producer's W3C trace context (BullMQ's `tm`
// option, as bullmq-otel stores it) is processed by the worker's real pipeline against the
// fake POS server, and the worker's spans arrive at a test OTLP receiver continuing that trace:
// a consumer span `process <queue>` with BullMQ's and the messaging conventions' attributes,
// whose children are the list, each download, the combine and each import batch.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const s = require('./support');
const { version } = require('../src/bullmq');
const { startReceiver } = require('./otlp-receiver');

const redis = s.useRedis();
const mongo = s.useMongo();

const SAMPLES = path.resolve(__dirname, '../../tests/fixtures/legacy-samples/input');
const DAY = '2026-02-09';

/** A directory with BMC POS 1's legacy sample exports of DAY; how many files it holds. */
function posExports(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fw-tracing-pos-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const files = fs.readdirSync(SAMPLES).filter((f) => f.startsWith('a_BMC_1_') && f.includes(`_${DAY}_`));
  assert.ok(files.length >= 2, `BMC POS 1 sample files of ${DAY} in ${SAMPLES}`);
  for (const f of files) fs.copyFileSync(path.join(SAMPLES, f), path.join(dir, f));
  return { dir, count: files.length };
}

/** The pipeline worker's environment for one test: its own database and scratch storage. */
function pipelineEnv(t, pos) {
  const dbName = mongo.server.uniqueDbName('tracing');
  t.after(() => mongo.client.db(dbName).dropDatabase().catch(() => {}));
  const raw = fs.mkdtempSync(path.join(os.tmpdir(), 'fw-tracing-raw-'));
  t.after(() => fs.rmSync(raw, { recursive: true, force: true }));
  return {
    MONGO_URI: mongo.server.uriFor(dbName),
    POS_LIST_URL: `${pos}fetch_list2.php`,
    POS_FILE_BASE_URL: pos,
    STORAGE: 'local',
    RAW_STORAGE_PATH: raw,
  };
}

/** The process environment without any OTEL_* variable (the runner's own must not leak in). */
function withoutOtel() {
  const env = {};
  for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) env[k] = '';
  return env;
}

describe(`traces from the producer's context to the worker's steps (worker=${s.WORKER}, bullmq ${version})`, { skip: s.WORKER === 'node' && 'needs the Rust worker\'s POS pipeline' }, () => {

  it('the worker continues the job\'s trace: a consumer span and its step spans', { timeout: 90000 }, async (t) => {
    const receiver = await startReceiver();
    t.after(() => receiver.close());
    const h = await s.setup(t, redis);
    const { dir, count } = posExports(t);
    const pos = await s.startFakePos(t, dir);
    const worker = h.startWorker({
      processor: null,
      env: {
        ...withoutOtel(),
        ...pipelineEnv(t, pos),
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_SERVICE_NAME: 'fetch-worker-test',
        OTEL_BSP_SCHEDULE_DELAY: '200',
      },
    });

    // The producer's span, as bullmq-otel would carry it in the job's `tm` option.
    const traceId = crypto.randomBytes(16).toString('hex');
    const producerSpanId = crypto.randomBytes(8).toString('hex');
    const jobId = `day.BMC.1.${DAY}`;
    await h.queue.add('fetch-job', { branch: 'BMC', pos: 1, date: DAY }, {
      jobId,
      telemetry: { metadata: JSON.stringify({ traceparent: `00-${traceId}-${producerSpanId}-01` }) },
    });
    const stored = JSON.parse(await h.db.hget(h.key(jobId), 'opts'));
    assert.equal(typeof stored.tm, 'string', `the job's opts carry tm: ${JSON.stringify(stored)}`);

    await h.waitForCounts({ completed: 1 }, { timeout: 60000 });
    const ours = () => receiver.spans.filter((sp) => sp.traceId === traceId);
    await h.waitUntil(() => ours().some((sp) => sp.name === 'process ' + h.queueName)
      && ours().filter((sp) => sp.name === 'import batch').length > 0
      && ours().some((sp) => sp.name === 'combine'), {
      timeout: 20000,
      message: 'the worker\'s spans at the receiver',
      describe: async () => `${await h.describe()}\nreceived: ${JSON.stringify(receiver.spans.map((sp) => sp.name))}\nerrors: ${receiver.errors}`,
    });
    await worker.stop();

    const spans = ours();
    assert.deepEqual(receiver.errors, []);
    for (const sp of spans) assert.equal(sp.service, 'fetch-worker-test', `${sp.name}'s service`);
    const consumers = spans.filter((sp) => sp.name === `process ${h.queueName}`);
    assert.equal(consumers.length, 1, 'one consumer span for the one attempt');
    const [consumer] = consumers;
    assert.equal(consumer.kind, 'consumer');
    assert.equal(consumer.parentSpanId, producerSpanId, 'the consumer span continues the producer\'s span');
    assert.deepEqual({
      'messaging.system': consumer.attributes['messaging.system'],
      'messaging.destination.name': consumer.attributes['messaging.destination.name'],
      'messaging.message.id': consumer.attributes['messaging.message.id'],
      'messaging.operation': consumer.attributes['messaging.operation'],
      'bullmq.queue.name': consumer.attributes['bullmq.queue.name'],
      'bullmq.queue.operation': consumer.attributes['bullmq.queue.operation'],
      'bullmq.job.id': consumer.attributes['bullmq.job.id'],
      'bullmq.job.name': consumer.attributes['bullmq.job.name'],
      'bullmq.job.attempts.made': consumer.attributes['bullmq.job.attempts.made'],
      'bullmq.worker.name': consumer.attributes['bullmq.worker.name'],
    }, {
      'messaging.system': 'bullmq',
      'messaging.destination.name': h.queueName,
      'messaging.message.id': jobId,
      'messaging.operation': 'process',
      'bullmq.queue.name': h.queueName,
      'bullmq.queue.operation': 'process',
      'bullmq.job.id': jobId,
      'bullmq.job.name': 'fetch-job',
      'bullmq.job.attempts.made': 0,
      'bullmq.worker.name': worker.name,
    });

    const children = spans.filter((sp) => sp.parentSpanId === consumer.spanId);
    const names = children.map((sp) => sp.name);
    assert.equal(names.filter((n) => n === 'list').length, 1, `one list span: ${names}`);
    const downloads = children.filter((sp) => sp.name === 'download');
    assert.equal(downloads.length, count, `a download span per file: ${names}`);
    assert.equal(new Set(downloads.map((d) => d.attributes.file)).size, count, 'each names its file');
    assert.equal(names.filter((n) => n === 'combine').length, 1, `one combine span: ${names}`);
    const batches = children.filter((sp) => sp.name === 'import batch');
    assert.ok(batches.length >= 1, `import batch spans: ${names}`);
    assert.deepEqual(batches.map((b) => b.attributes.batch).sort((a, b) => a - b), batches.map((_, i) => i + 1));
    for (const b of batches) assert.ok(Number.isInteger(b.attributes.rows) && b.attributes.rows > 0, 'a batch counts its rows');
    // Every span of the trace hangs off the consumer (no orphan from an unexported parent).
    const ids = new Set([producerSpanId, ...spans.map((sp) => sp.spanId)]);
    for (const sp of spans) assert.ok(ids.has(sp.parentSpanId), `${sp.name}'s parent is in the trace`);
  });

  it('with the OTEL variables unset, nothing is sent to the default OTLP endpoint', { timeout: 90000 }, async (t) => {
    // The worker could only reach a receiver it was not told of at OTLP's default address.
    let receiver;
    try {
      receiver = await startReceiver({ port: 4318 });
    } catch (err) {
      t.skip(`port 4318 is busy (${err.code}): cannot watch the default endpoint`);
      return;
    }
    t.after(() => receiver.close());
    const h = await s.setup(t, redis);
    const { dir } = posExports(t);
    const pos = await s.startFakePos(t, dir);
    const worker = h.startWorker({ processor: null, env: { ...withoutOtel(), ...pipelineEnv(t, pos), OTEL_BSP_SCHEDULE_DELAY: '100' } });
    const traceId = crypto.randomBytes(16).toString('hex');
    await h.queue.add('fetch-job', { branch: 'BMC', pos: 1, date: DAY }, {
      jobId: `day.BMC.1.${DAY}`,
      telemetry: { metadata: JSON.stringify({ traceparent: `00-${traceId}-${crypto.randomBytes(8).toString('hex')}-01` }) },
    });
    await h.waitForCounts({ completed: 1 }, { timeout: 60000 });
    await new Promise((r) => setTimeout(r, 500));
    await worker.stop();
    assert.equal(receiver.connections, 0, `requests: ${JSON.stringify(receiver.requests)}`);
  });
});

// The whole stack: the app (src/server.js, as it runs in production) and the worker both export
// to the receiver; one POST /missing must give one trace, a tree from the request's server span
// through BullMQ's `addBulk` producer span (bullmq-otel) to the worker's consumer span and, with
// the Rust worker, its steps. With the Node reference worker (WORKER=node) the consumer span is
// BullMQ's own Worker's, parented the same way: that proves the links asserted here are
// BullMQ's, not ours.
describe(`one trace from POST /missing to the worker (worker=${s.WORKER}, bullmq ${version})`, () => {
  const TOKEN = 'tracing-test-token-0123456789';
  const APP_SERVICE = 'fetch-app-test';
  const WORKER_SERVICE = 'fetch-worker-test';

  /** POST /missing for BMC POS 1's DAY; the answer's job ids. */
  async function postMissing(app) {
    const res = await fetch(`${app.url}/missing`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ branches_missing: { BMC: { 1: [DAY] } } }),
    });
    const body = await res.json();
    assert.equal(res.status, 202, JSON.stringify(body));
    return body.jobIds;
  }

  /** The worker under test: the Rust pipeline against the fake POS, or Node's with `noop`. */
  async function startTracedWorker(t, h, otel) {
    if (s.WORKER === 'node') return h.startWorker({ env: otel });
    const { dir } = posExports(t);
    const pos = await s.startFakePos(t, dir);
    return h.startWorker({ processor: null, env: { ...otel, ...pipelineEnv(t, pos) } });
  }

  it('the request, its add span, the consumer span and the steps are one tree', { timeout: 120000 }, async (t) => {
    const receiver = await startReceiver();
    t.after(() => receiver.close());
    const h = await s.setup(t, redis);
    const otel = (service) => ({
      ...withoutOtel(),
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: service,
      OTEL_BSP_SCHEDULE_DELAY: '200',
    });
    const app = await s.startApp(t, h, {
      ...otel(APP_SERVICE),
      MONGO_URI: mongo.server.uriFor(mongo.server.uniqueDbName('tracing-app')),
      API_TOKEN: TOKEN,
      BRANCHES: 'BMC',
    });
    const worker = await startTracedWorker(t, h, otel(WORKER_SERVICE));

    const jobIds = await postMissing(app);
    assert.deepEqual(jobIds, [`day.BMC.1.${DAY}`]);
    await h.waitForCounts({ completed: 1 }, { timeout: 60000 });

    const named = (name) => receiver.spans.filter((sp) => sp.name === name);
    const consumerName = `process ${h.queueName}`;
    await h.waitUntil(() => named('POST /missing').length > 0 && named(`addBulk ${h.queueName}`).length > 0
      && named(consumerName).length > 0
      && (s.WORKER === 'node' || named('import batch').length > 0), {
      timeout: 20000,
      message: 'the app\'s and the worker\'s spans at the receiver',
      describe: async () => `${await h.describe()}\nreceived: ${JSON.stringify(receiver.spans.map((sp) => `${sp.service}: ${sp.name}`))}\n`
        + `errors: ${receiver.errors}\napp log:\n${app.logs().slice(-20).join('\n')}`,
    });
    await worker.stop();
    assert.deepEqual(await app.stop(), { code: 0, signal: null }, 'the app stops cleanly, its last spans sent');
    assert.deepEqual(receiver.errors, []);

    // The request's server span is the root of the trace.
    const servers = named('POST /missing');
    assert.equal(servers.length, 1, 'one server span for the one request');
    const [server] = servers;
    assert.equal(server.service, APP_SERVICE);
    assert.equal(server.kind, 'server');
    assert.equal(server.parentSpanId, '', 'the request started the trace');
    assert.equal(server.attributes['http.route'], '/missing');
    assert.equal(server.attributes['http.request.method'], 'POST');
    assert.equal(server.attributes['http.response.status_code'], 202);
    const spans = receiver.spans.filter((sp) => sp.traceId === server.traceId);

    // BullMQ's producer span (bullmq-otel), a child of the request's.
    const adds = spans.filter((sp) => sp.name === `addBulk ${h.queueName}`);
    assert.equal(adds.length, 1, `one addBulk span in the request's trace: ${JSON.stringify(spans.map((sp) => sp.name))}`);
    const [add] = adds;
    assert.equal(add.service, APP_SERVICE);
    assert.equal(add.kind, 'producer');
    assert.equal(add.parentSpanId, server.spanId, 'the add span is the request\'s child');
    assert.equal(add.attributes['bullmq.queue.name'], h.queueName);

    // The job carries the add span's context (BullMQ's `tm`): what the worker continues.
    const opts = JSON.parse(await h.db.hget(h.key(jobIds[0]), 'opts'));
    const tm = JSON.parse(opts.tm);
    assert.equal(tm.traceparent, `00-${server.traceId}-${add.spanId}-01`, `the job's tm: ${opts.tm}`);

    // The worker's consumer span: the add span's child, in the same trace.
    const consumers = spans.filter((sp) => sp.name === consumerName);
    assert.equal(consumers.length, 1, `one consumer span in the trace: ${JSON.stringify(receiver.spans.map((sp) => `${sp.traceId.slice(0, 6)} ${sp.name}`))}`);
    const [consumer] = consumers;
    assert.equal(consumer.service, WORKER_SERVICE);
    assert.equal(consumer.kind, 'consumer');
    assert.equal(consumer.parentSpanId, add.spanId, 'the consumer span is the add span\'s child');
    assert.equal(consumer.attributes['bullmq.job.id'], jobIds[0]);
    assert.equal(consumer.attributes['bullmq.queue.name'], h.queueName);
    assert.equal(consumer.attributes['bullmq.worker.name'], worker.name);

    if (s.WORKER !== 'node') {
      // The Rust worker's steps, children of the consumer span.
      const steps = spans.filter((sp) => sp.parentSpanId === consumer.spanId).map((sp) => sp.name);
      for (const step of ['list', 'download', 'combine', 'import batch']) {
        assert.ok(steps.includes(step), `a ${step} span under the consumer span: ${steps}`);
      }
    }
    // One tree: every span of the trace hangs off another span of it, up to the request's.
    const ids = new Set(spans.map((sp) => sp.spanId));
    for (const sp of spans) {
      if (sp !== server) assert.ok(ids.has(sp.parentSpanId), `${sp.service}: ${sp.name}'s parent is in the trace`);
    }
  });

  it('with the OTEL variables unset, the app adds no trace context to the jobs', { timeout: 60000 }, async (t) => {
    const h = await s.setup(t, redis);
    const app = await s.startApp(t, h, {
      ...withoutOtel(),
      MONGO_URI: mongo.server.uriFor(mongo.server.uniqueDbName('tracing-app')),
      API_TOKEN: TOKEN,
      BRANCHES: 'BMC',
    });
    const jobIds = await postMissing(app);
    const opts = JSON.parse(await h.db.hget(h.key(jobIds[0]), 'opts'));
    assert.equal(opts.tm, undefined, `no tm: ${JSON.stringify(opts)}`);
    assert.ok(!app.logs().some((l) => /tracing on/.test(l)), app.logs().join('\n'));
    assert.deepEqual(await app.stop(), { code: 0, signal: null });
  });
});
