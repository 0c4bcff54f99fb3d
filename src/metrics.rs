//! Prometheus metrics of one worker process, served at `/metrics` (see [`crate::ops`]).
//!
//! Built on `prometheus-client` (the maintained OpenMetrics crate). Counters:
//! `fetch_worker_jobs_total{outcome}` (completed, failed, retried, released),
//! `fetch_worker_rows_imported_total`, `fetch_worker_downloads_total{result}` (ok, error),
//! `fetch_worker_download_bytes_total`; histogram `fetch_worker_attempt_duration_seconds`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::bullmq::{AttemptOutcome, Observer};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DownloadResult {
    result: &'static str,
}

/// The process's metrics. Share it behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    jobs: Family<Outcome, Counter>,
    durations: Histogram,
    rows_imported: Counter,
    downloads: Family<DownloadResult, Counter>,
    download_bytes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("fetch_worker");
        let jobs = Family::<Outcome, Counter>::default();
        registry.register("jobs", "Job attempts by outcome", jobs.clone());
        // 10 ms to about 80 s.
        let durations = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "attempt_duration_seconds",
            "How long job attempts ran",
            durations.clone(),
        );
        let rows_imported = Counter::default();
        registry.register(
            "rows_imported",
            "Transactions written to MongoDB",
            rows_imported.clone(),
        );
        let downloads = Family::<DownloadResult, Counter>::default();
        registry.register(
            "downloads",
            "POS file downloads by result",
            downloads.clone(),
        );
        let download_bytes = Counter::default();
        registry.register(
            "download_bytes",
            "Bytes of POS files downloaded",
            download_bytes.clone(),
        );
        Metrics {
            registry,
            jobs,
            durations,
            rows_imported,
            downloads,
            download_bytes,
        }
    }

    /// Counts imported rows.
    pub fn rows_imported(&self, n: u64) {
        self.rows_imported.inc_by(n);
    }

    /// Counts a download.
    pub fn download(&self, ok: bool, bytes: u64) {
        let result = if ok { "ok" } else { "error" };
        self.downloads
            .get_or_create(&DownloadResult { result })
            .inc();
        self.download_bytes.inc_by(bytes);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Observer for Metrics {
    fn attempt_finished(&self, outcome: AttemptOutcome, duration: Duration) {
        self.jobs
            .get_or_create(&Outcome {
                outcome: outcome.label(),
            })
            .inc();
        if outcome != AttemptOutcome::Released {
            self.durations.observe(duration.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_rows_and_downloads_are_exported() {
        let m = Metrics::new();
        m.attempt_finished(AttemptOutcome::Completed, Duration::from_millis(20));
        m.attempt_finished(AttemptOutcome::Retried, Duration::from_millis(5));
        m.rows_imported(42);
        m.download(true, 1000);
        let text = m.encode();
        assert!(
            text.contains("fetch_worker_jobs_total{outcome=\"completed\"} 1"),
            "{text}"
        );
        assert!(text.contains("fetch_worker_jobs_total{outcome=\"retried\"} 1"));
        assert!(text.contains("fetch_worker_rows_imported_total 42"));
        assert!(text.contains("fetch_worker_downloads_total{result=\"ok\"} 1"));
        assert!(text.contains("fetch_worker_attempt_duration_seconds_count 2"));
    }
}
