//! Logging setup: `tracing` with an `EnvFilter` from `RUST_LOG` (default `fetch_worker=info`),
//! pretty for people or JSON for log shippers. Logs go to stderr so stdout stays for data.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("fetch_worker=info"));
    // Colour only for a terminal: a log file or a pipe gets plain text, not escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        // The span list carries the job's fields (queue, job_id, attempt) and the day's
        // (branch, pos, date) on every line logged while a job runs.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}
