'use strict';
// Traces with OpenTelemetry, off unless the standard variables ask for them.
//
//   OTEL_EXPORTER_OTLP_ENDPOINT         the collector's OTLP/HTTP base URL (`/v1/traces` is
//                                       added); OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, the full
//                                       traces URL, wins over it. Neither set: no tracing
//   OTEL_SERVICE_NAME                   the service's name (default: the caller's, `fetch-app`)
//   OTEL_SDK_DISABLED=true              no tracing even with an endpoint
//   OTEL_BSP_SCHEDULE_DELAY, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS…  read by
//                                       the SDK itself
//
// The worker (src/telemetry.rs) reads the same variables, so one set switches both sides on.
// When on, a Queue or Worker given `telemetry` (BullMQ's interface, implemented by bullmq-otel)
// opens BullMQ's own spans (`addBulk fetch`, `add fetch.<name>`, and on a Node Worker
// `process fetch`) under the active span, and stores the context in each job's `tm` option; the
// worker continues the trace from there. [`serverSpans`] gives each HTTP request the server
// span those hang under. When off, nothing below is even loaded.

/** The instrumentation scope of the HTTP server spans (BullMQ's own spans say `bullmq`). */
const TRACER_NAME = 'fetch-app';

/** True for the values OTEL_SDK_DISABLED takes as "disabled" (the specification's boolean). */
function sdkDisabled(env) {
  return String(env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true';
}

/** The traces endpoint the environment names, or null when tracing is off. */
function tracesEndpoint(env = process.env) {
  if (sdkDisabled(env)) return null;
  const endpoint = (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT || '').trim();
  return endpoint || null;
}

/**
 * Starts the OpenTelemetry SDK when [`tracesEndpoint`] names a collector (`version`: the
 * caller's, for its tracer's scope), and returns
 * `{ telemetry, tracer, shutdown }`: `telemetry` for a BullMQ Queue or Worker option of that
 * name, `tracer` for [`serverSpans`], `shutdown()` to send the spans still buffered (call it on
 * exit). Returns null when tracing is off, having loaded nothing.
 *
 * The provider is registered globally (with the AsyncLocalStorage context manager and the W3C
 * propagator): bullmq-otel finds its tracer through the global API, and spans started while
 * another is active become its children.
 */
function startTracing({ env = process.env, serviceName = 'fetch-app', version } = {}) {
  if (!tracesEndpoint(env)) return null;
  const { NodeTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-node');
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
  const {
    defaultResource, detectResources, envDetector, resourceFromAttributes,
  } = require('@opentelemetry/resources');
  const api = require('@opentelemetry/api');
  // bullmq-otel 1.3.1 under an alias: see the README's tracing section for why one release
  // serves BullMQ 5 and 6.
  const { BullMQOtel } = require('bullmq-otel1');

  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (the env detector) win over our default.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': serviceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  // The exporter reads the endpoint (and headers, timeout) from the environment itself.
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  provider.register();
  return {
    // BullMQ's spans under its own scope and version; ours under the caller's.
    telemetry: new BullMQOtel({ tracerName: 'bullmq', version: require('./bullmq').version }),
    tracer: api.trace.getTracer(TRACER_NAME, version),
    shutdown: () => provider.shutdown(),
  };
}

/** The route a request matched (`/missing`, `/jobs/:id`), or undefined (none, or a pattern). */
function routeOf(req) {
  const route = req.route && req.route.path;
  return typeof route === 'string' ? `${req.baseUrl || ''}${route}` : undefined;
}

/**
 * Express middleware that opens a server span per request, named `METHOD /route` and
 * attributed as OpenTelemetry's HTTP conventions say, and makes it the active span for the rest
 * of the request, so the Queue's `addBulk` span (and so the worker's) hang under it. A caller's
 * own `traceparent` header is continued. A small span of our own rather than
 * @opentelemetry/instrumentation-http: that one patches `http` at load time (it must be
 * required before Express), and traces every outgoing request of every library too.
 *
 * Only the method, the path (never the query) and the status are recorded: no header, body or
 * token.
 */
function serverSpans(tracer) {
  const api = require('@opentelemetry/api');
  return (req, res, next) => {
    const parent = api.propagation.extract(api.ROOT_CONTEXT, req.headers);
    const span = tracer.startSpan(req.method, {
      kind: api.SpanKind.SERVER,
      attributes: {
        'http.request.method': req.method,
        'url.path': req.path,
        'url.scheme': req.protocol,
      },
    }, parent);
    const active = api.trace.setSpan(parent, span);
    // Listeners added to the request or the response (body parsing, `finish` handlers) run
    // under the span whatever context emits their events, as instrumentation-http binds them.
    // On Node 20 the route already keeps the context through express.json (a test checks it
    // with a body of many reads); the binding keeps it for emitters that do not.
    api.context.bind(active, req);
    api.context.bind(active, res);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      const route = routeOf(req);
      if (route) {
        span.updateName(`${req.method} ${route}`);
        span.setAttribute('http.route', route);
      }
      span.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: api.SpanStatusCode.ERROR });
      span.end();
    };
    res.once('finish', end);
    res.once('close', end);
    api.context.with(active, next);
  };
}

module.exports = { startTracing, serverSpans, tracesEndpoint, TRACER_NAME };
