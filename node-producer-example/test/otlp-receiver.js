'use strict';

// A test OTLP/HTTP trace receiver: accepts `POST /v1/traces` with the JSON encoding (what the
// worker's exporter sends), keeps every span flat with its service name, and counts the
// connections made to it, so a test can also check that nothing was sent at all.

const http = require('node:http');

/** An OTLP JSON attribute value as a plain JS value (int64 arrives as a string). */
function attrValue(v) {
  if (v == null) return undefined;
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('boolValue' in v) return v.boolValue;
  if ('arrayValue' in v) return (v.arrayValue.values || []).map(attrValue);
  return undefined;
}

function attrs(list) {
  const out = {};
  for (const a of list || []) out[a.key] = attrValue(a.value);
  return out;
}

/** OTLP's span kinds, by the number the JSON encoding may use. */
const KINDS = { 1: 'internal', 2: 'server', 3: 'client', 4: 'producer', 5: 'consumer' };

function kindName(k) {
  if (typeof k === 'number') return KINDS[k] || String(k);
  return String(k).replace(/^SPAN_KIND_/, '').toLowerCase();
}

/** Flattens one ExportTraceServiceRequest (JSON) into spans. */
function spansOf(body) {
  const out = [];
  for (const rs of body.resourceSpans || []) {
    const resource = attrs(rs.resource && rs.resource.attributes);
    for (const ss of rs.scopeSpans || []) {
      for (const span of ss.spans || []) {
        out.push({
          service: resource['service.name'],
          name: span.name,
          kind: kindName(span.kind),
          traceId: String(span.traceId || '').toLowerCase(),
          spanId: String(span.spanId || '').toLowerCase(),
          parentSpanId: String(span.parentSpanId || '').toLowerCase(),
          attributes: attrs(span.attributes),
        });
      }
    }
  }
  return out;
}

/**
 * Starts the receiver on a free loopback port (or on `port`); resolves to
 * `{ url, spans, connections, requests, close() }`.
 */
async function startReceiver({ port = 0 } = {}) {
  const state = { spans: [], connections: 0, requests: [], errors: [] };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      state.requests.push({ method: req.method, url: req.url, type: req.headers['content-type'] });
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      try {
        state.spans.push(...spansOf(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } catch (err) {
        state.errors.push(`${req.headers['content-type']}: ${err.message}`);
        res.writeHead(400).end();
      }
    });
  });
  server.on('connection', () => (state.connections += 1));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const { port: bound } = server.address();
  return {
    url: `http://127.0.0.1:${bound}`,
    get spans() {
      return state.spans;
    },
    get connections() {
      return state.connections;
    },
    requests: state.requests,
    errors: state.errors,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

module.exports = { startReceiver, spansOf };
