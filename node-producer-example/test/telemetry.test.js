'use strict';

// src/telemetry.js without Redis or a collector: when tracing is on, what the server spans
// record (and what they must not), and that with the variables unset nothing is loaded.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const express = require('express');
const api = require('@opentelemetry/api');
const {
  NodeTracerProvider, InMemorySpanExporter, SimpleSpanProcessor,
} = require('@opentelemetry/sdk-trace-node');
const { serverSpans, tracesEndpoint } = require('../src/telemetry');
const s = require('./support');

describe('tracesEndpoint: the standard variables switch tracing', () => {
  it('is off when neither endpoint is set, or set empty', () => {
    assert.equal(tracesEndpoint({}), null);
    assert.equal(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }), null);
    assert.equal(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' }), null);
  });

  it('is on with either endpoint; the traces one wins', () => {
    assert.equal(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), 'http://c:4318');
    assert.equal(tracesEndpoint({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:4318/v1/traces',
    }), 'http://t:4318/v1/traces');
  });

  it('is off with OTEL_SDK_DISABLED=true even with an endpoint', () => {
    assert.equal(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'TRUE' }), null);
    assert.equal(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'false' }), 'http://c:4318');
  });

  it('off, the app loads none of the SDK', () => {
    // A fresh process: this one has loaded the SDK for the tests below.
    const script = `
      const { startTracing } = require('./src/telemetry');
      if (startTracing({ env: {} }) !== null) throw new Error('tracing on without an endpoint');
      const loaded = Object.keys(require.cache).filter((f) => /@opentelemetry|bullmq-otel/.test(f));
      process.stdout.write(JSON.stringify(loaded));
    `;
    const out = execFileSync(process.execPath, ['-e', script], { cwd: path.resolve(__dirname, '..') });
    assert.deepEqual(JSON.parse(out), []);
  });
});

describe('serverSpans: one server span per request', () => {
  const exporter = new InMemorySpanExporter();
  let provider;
  let base;
  before(() => {
    provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    provider.register();
  });
  after(() => provider.shutdown());

  /** Serves a small app behind serverSpans for the test. */
  async function serve(t) {
    const app = express();
    app.use(serverSpans(api.trace.getTracer('test')));
    app.post('/items/:id', express.json({ limit: '4mb' }), (req, res) => {
      // A span opened by the route, after the body was parsed: the server span's child.
      api.trace.getTracer('test').startSpan('inner').end();
      res.status(201).json({ id: req.params.id, body: req.body });
    });
    app.get('/boom', () => {
      throw new Error('boom');
    });
    // eslint-disable-next-line no-unused-vars
    app.use((err, req, res, next) => res.status(500).json({ error: err.message }));
    base = await s.listenApp(t, app);
  }

  it('is named after the route, records method, path and status, and is the parent of the route\'s spans', async (t) => {
    exporter.reset();
    await serve(t);
    const res = await fetch(`${base}/items/42?token=secret`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer secret-token' },
      body: JSON.stringify({ a: 1 }),
    });
    assert.equal(res.status, 201);
    await s.waitUntil(() => exporter.getFinishedSpans().length >= 2, { message: 'two spans' });
    const spans = exporter.getFinishedSpans();
    const server = spans.find((sp) => sp.kind === api.SpanKind.SERVER);
    const inner = spans.find((sp) => sp.name === 'inner');
    assert.equal(server.name, 'POST /items/:id');
    assert.deepEqual(server.attributes, {
      'http.request.method': 'POST',
      'url.path': '/items/42',
      'url.scheme': 'http',
      'http.route': '/items/:id',
      'http.response.status_code': 201,
    });
    assert.equal(server.parentSpanContext, undefined, 'a request without traceparent starts a trace');
    assert.equal(inner.spanContext().traceId, server.spanContext().traceId);
    assert.equal(inner.parentSpanContext.spanId, server.spanContext().spanId, 'the route\'s span is the request\'s child');
    // Neither the query nor a header reaches the span.
    assert.ok(!JSON.stringify(server.attributes).includes('secret'));
  });

  it('stays the parent of the route\'s spans when the body arrives in many reads', async (t) => {
    // A body of many TCP reads: the parser's events then come from the socket, not from the
    // middleware's own continuation.
    exporter.reset();
    await serve(t);
    const res = await fetch(`${base}/items/big`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pad: 'x'.repeat(3 * 1024 * 1024) }),
    });
    assert.equal(res.status, 201);
    await s.waitUntil(() => exporter.getFinishedSpans().length >= 2, { message: 'two spans' });
    const spans = exporter.getFinishedSpans();
    const server = spans.find((sp) => sp.kind === api.SpanKind.SERVER);
    const inner = spans.find((sp) => sp.name === 'inner');
    assert.equal(inner.parentSpanContext?.spanId, server.spanContext().spanId);
  });

  it('continues a caller\'s traceparent, and marks a 500 as an error', async (t) => {
    exporter.reset();
    await serve(t);
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const res = await fetch(`${base}/boom`, { headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` } });
    assert.equal(res.status, 500);
    await s.waitUntil(() => exporter.getFinishedSpans().length >= 1, { message: 'the server span' });
    const [server] = exporter.getFinishedSpans();
    assert.equal(server.name, 'GET /boom');
    assert.equal(server.spanContext().traceId, traceId);
    assert.equal(server.parentSpanContext.spanId, 'b7ad6b7169203331');
    assert.equal(server.status.code, api.SpanStatusCode.ERROR);
  });

  it('names a request no route matched by its method only', async (t) => {
    exporter.reset();
    await serve(t);
    const res = await fetch(`${base}/nowhere/123`);
    assert.equal(res.status, 404);
    await s.waitUntil(() => exporter.getFinishedSpans().length >= 1, { message: 'the server span' });
    const [server] = exporter.getFinishedSpans();
    assert.equal(server.name, 'GET');
    assert.equal(server.attributes['http.route'], undefined);
    assert.equal(server.attributes['http.response.status_code'], 404);
  });
});
