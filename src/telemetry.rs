//! Logging setup: `tracing` with an `EnvFilter` from `RUST_LOG` (default `fetch_worker=info`),
//! pretty for people or JSON for log shippers. Logs go to stderr so stdout stays for data.
//!
//! Traces: when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, [`init_with_traces`] also exports this crate's
//! spans over OTLP/HTTP (JSON) with a batch exporter (`OTEL_BSP_SCHEDULE_DELAY` sets how often
//! it sends; `OTEL_SERVICE_NAME` names the service, `fetch-worker` by default). Unset, no
//! exporter, thread or layer exists at all.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// The service name when `OTEL_SERVICE_NAME` is unset.
pub const DEFAULT_SERVICE_NAME: &str = "fetch-worker";

/// Set once [`init_with_traces`] has installed the exporter.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported, so a span's attributes that only the trace backend reads are
/// worth recording. The log layer formats every field of every span it sees; the job span's
/// dozen OpenTelemetry attributes cost a busy worker a few µs per job that logs never show.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Why the trace exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter refused its configuration (a bad endpoint, say).
    #[error("setting up the OTLP trace exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
    /// The HTTP client for the exporter could not be built.
    #[error("building the OTLP HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Installs the global subscriber (logs only). Calling it twice is harmless (the second call
/// is ignored).
///
/// With logs alone, `RUST_LOG` filters the whole subscriber: what it leaves out is never
/// built, and what it keeps pays for no per-layer filter bookkeeping. Each job opens a span
/// and enters it at every poll; that bookkeeping was 3-8 % of a busy worker's own CPU
/// (perf stat, concurrency 16 and 64).
pub fn init(format: LogFormat) {
    let _ = tracing_subscriber::registry()
        .with(log_filter())
        .with(log_layer(format))
        .try_init();
}

/// `RUST_LOG`, or `fetch_worker=info`.
fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("fetch_worker=info"))
}

/// The stderr log layer, unfiltered: [`init`] filters the subscriber, [`init_with_traces`]
/// this layer alone (so the trace layer beside it is filtered on its own).
fn log_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    // Colour only for a terminal: a log file or a pipe gets plain text, not escape codes.
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => layer.boxed(),
        // The span list carries the job's fields (queue, job_id, attempt) and the day's
        // (branch, pos, date) on every line logged while a job runs.
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .boxed(),
    }
}

/// The trace exporter, when there is one: shut it down last so the final spans are sent.
#[must_use = "shut it down at exit, or the last spans are lost"]
pub struct Traces {
    provider: Option<SdkTracerProvider>,
}

impl Traces {
    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still buffered and stops the exporter. Call it outside async code (it
    /// blocks until the export is done) while the runtime given to [`init_with_traces`] is
    /// still alive: the export runs on it.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("fetch-worker: flushing traces at exit: {e}");
        }
    }
}

/// Whether the standard variables ask for trace export.
fn endpoint_set() -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var(k).is_ok_and(|v| !v.trim().is_empty()))
}

/// Installs the global subscriber: logs as [`init`] does and, when `OTEL_EXPORTER_OTLP_ENDPOINT`
/// is set, an OpenTelemetry layer exporting this crate's spans. The exporter sends through
/// `runtime` (its HTTP client is the tokio-based reqwest the worker already has).
///
/// # Errors
///
/// [`TelemetryError`] when the variables are set but the exporter cannot be built; logging
/// is installed either way.
pub fn init_with_traces(
    format: LogFormat,
    runtime: &tokio::runtime::Handle,
) -> Result<Traces, TelemetryError> {
    if !endpoint_set() {
        init(format);
        return Ok(Traces { provider: None });
    }
    let client = RuntimeHttpClient {
        runtime: runtime.clone(),
        client: reqwest::Client::builder()
            .build()
            .map_err(TelemetryError::Client)?,
    };
    let built = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_http_client(client)
        .build();
    let exporter = match built {
        Ok(e) => e,
        Err(e) => {
            init(format);
            return Err(TelemetryError::Exporter(e));
        }
    };
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
    let provider = SdkTracerProvider::builder()
        // The batch processor reads OTEL_BSP_SCHEDULE_DELAY and its siblings itself.
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build();
    let tracer = provider.tracer("fetch-worker");
    // Only this crate's spans, without the handler's `day` span: it only carries log fields,
    // and leaving it out makes the steps direct children of the job's consumer span.
    let only_ours = tracing_subscriber::filter::filter_fn(|meta| {
        meta.is_span()
            && meta.target().starts_with("fetch_worker")
            && !(meta.name() == "day" && meta.target().starts_with("fetch_worker::handler"))
    });
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(only_ours);
    let installed = tracing_subscriber::registry()
        .with(log_layer(format).with_filter(log_filter()))
        .with(otel)
        .try_init();
    EXPORTING.store(installed.is_ok(), Ordering::Relaxed);
    Ok(Traces {
        provider: Some(provider),
    })
}

/// The W3C trace context a producer stored with a job (BullMQ's telemetry `tm` option: a JSON
/// object such as `{"traceparent": "00-…"}`), as a parent context. `None` when the text is not
/// such an object or carries no valid `traceparent`: the job's span then starts a new trace.
pub fn parent_from_carrier(carrier_json: &str) -> Option<opentelemetry::Context> {
    use opentelemetry::trace::TraceContextExt;
    let map: HashMap<String, String> = serde_json::from_str(carrier_json).ok()?;
    let cx = TraceContextPropagator::new().extract(&map);
    cx.span().span_context().is_valid().then_some(cx)
}

/// Continues the trace `carrier_json` names (see [`parent_from_carrier`]) under `span`.
/// Does nothing when traces are off or the carrier is not valid.
pub fn continue_trace(span: &tracing::Span, carrier_json: &str) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if let Some(cx) = parent_from_carrier(carrier_json) {
        // Fails only when the span is not exported (traces off): nothing to link then.
        let _ = span.set_parent(cx);
    }
}

/// The exporter's HTTP client: the batch processor exports from its own thread, outside any
/// runtime, so each request is spawned onto the worker's tokio runtime and awaited from there.
#[derive(Debug)]
struct RuntimeHttpClient {
    runtime: tokio::runtime::Handle,
    client: reqwest::Client,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeHttpClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<bytes::Bytes>,
    ) -> Result<opentelemetry_http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())?;
        let mut builder = client
            .request(method, url)
            .timeout(std::time::Duration::from_secs(10));
        for (name, value) in &parts.headers {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
        let send = async move {
            let response = builder.body(body).send().await?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        };
        let (status, bytes) = self.runtime.spawn(send).await??;
        Ok(opentelemetry_http::Response::builder()
            .status(status)
            .body(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn a_bullmq_carrier_gives_the_producers_span_as_parent() {
        let cx = parent_from_carrier(
            r#"{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}"#,
        )
        .expect("a valid carrier");
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(sc.span_id().to_string(), "b7ad6b7169203331");
        assert!(sc.is_remote());
    }

    #[test]
    fn a_bad_carrier_starts_no_trace() {
        assert!(parent_from_carrier("not json").is_none());
        assert!(parent_from_carrier(r#"{"traceparent":"garbage"}"#).is_none());
        assert!(parent_from_carrier("{}").is_none());
        assert!(parent_from_carrier(r#"["00-0af7651916cd43dd8448eb211c80319c"]"#).is_none());
    }
}
