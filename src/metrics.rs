//! Prometheus metrics of one worker process, served at `/metrics` (see [`crate::ops`]).
//!
//! Built on `prometheus-client` (the maintained OpenMetrics crate). Counters:
//! `fetch_worker_jobs_total{outcome}` (completed, failed, retried, released),
//! `fetch_worker_rows_imported_total`, `fetch_worker_downloads_total{result}` (ok, error),
//! `fetch_worker_download_bytes_total`, `fetch_worker_monitor_entries_total`,
//! `fetch_worker_days_total{branch,outcome}`, `fetch_worker_branch_rows_total{branch,result}`;
//! histograms `fetch_worker_attempt_duration_seconds` and
//! `fetch_worker_step_duration_seconds{step}`; the queue's state, sampled when scraped (see
//! [`crate::queue_metrics`]): `fetch_worker_queue_jobs{state}`,
//! `fetch_worker_queue_oldest_waiting_age_seconds`, `fetch_worker_queue_up` and
//! `fetch_worker_queue_sample_errors_total`. The README's "Metrics" section lists them all.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::bullmq::{AttemptOutcome, Observer};
use crate::queue_metrics::QueueSampler;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DownloadResult {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabel {
    step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DayLabels {
    branch: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RowLabels {
    branch: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// A step of the pipeline, timed by [`Metrics::observe_step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Asking the POS server for the day's files.
    List,
    /// One file's download into raw storage.
    Download,
    /// The combine pass over the day's files (runs beside the import).
    Combine,
    /// The import into MongoDB, from its start to its commit (waits on the combine's batches).
    Import,
}

impl Step {
    /// The `step` label.
    pub fn label(self) -> &'static str {
        match self {
            Step::List => "list",
            Step::Download => "download",
            Step::Combine => "combine",
            Step::Import => "import",
        }
    }
}

/// How a day's attempt ended, as `fetch_worker_days_total{outcome}` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayOutcome {
    /// The job completed with files: the day was combined and imported (its rows are counted
    /// per branch).
    Completed,
    /// The POS server listed no files for a day that is due.
    Missing,
    /// The attempt failed; the job runs again.
    Retried,
    /// The job failed for good.
    Failed,
}

impl DayOutcome {
    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            DayOutcome::Completed => "completed",
            DayOutcome::Missing => "missing",
            DayOutcome::Retried => "retried",
            DayOutcome::Failed => "failed",
        }
    }
}

/// The most distinct `branch` label values; later ones are counted as `other`. Branches are
/// few (tens), so this only matters when something sends nonsense, and then it keeps the
/// series count bounded.
pub const MAX_BRANCH_LABELS: usize = 200;

/// The process's metrics. Share it behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    jobs: Family<Outcome, Counter>,
    durations: Histogram,
    rows_imported: Counter,
    downloads: Family<DownloadResult, Counter>,
    download_bytes: Counter,
    steps: Family<StepLabel, Histogram>,
    monitor_entries: Counter,
    days: Family<DayLabels, Counter>,
    branch_rows: Family<RowLabels, Counter>,
    branches: Mutex<HashSet<String>>,
    queue_jobs: Family<StateLabel, Gauge>,
    queue_age: Gauge<f64, AtomicU64>,
    queue_up: Gauge,
    queue_errors: Counter,
    queue: OnceLock<QueueSampler>,
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
        // 5 ms to about 80 s: a listing takes milliseconds, an import of a big day seconds.
        let steps = Family::<StepLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 15))
        });
        registry.register(
            "step_duration_seconds",
            "How long each pipeline step took (list, download per file, combine, import)",
            steps.clone(),
        );
        let monitor_entries = Counter::default();
        registry.register(
            "monitor_entries",
            "Entries written to monitorentries (date mismatches, layout problems, failed days)",
            monitor_entries.clone(),
        );
        let days = Family::<DayLabels, Counter>::default();
        registry.register(
            "days",
            "Day attempts by branch and outcome (completed, missing, retried, failed)",
            days.clone(),
        );
        let branch_rows = Family::<RowLabels, Counter>::default();
        registry.register(
            "branch_rows",
            "Rows of finished days by branch and result (imported, rejected)",
            branch_rows.clone(),
        );
        let queue_jobs = Family::<StateLabel, Gauge>::default();
        registry.register(
            "queue_jobs",
            "Jobs in each state of the queue, read from Redis when scraped",
            queue_jobs.clone(),
        );
        let queue_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "queue_oldest_waiting_age_seconds",
            "How long the next job to run has been waiting (queue latency); NaN when unknown",
            queue_age.clone(),
        );
        let queue_up = Gauge::default();
        registry.register(
            "queue_up",
            "1 when the last read of the queue's state succeeded, else 0",
            queue_up.clone(),
        );
        let queue_errors = Counter::default();
        registry.register(
            "queue_sample_errors",
            "Reads of the queue's state that failed or timed out",
            queue_errors.clone(),
        );
        // The bounded label values start at zero, so `rate()` sees a job's first outcome and
        // every series a dashboard queries exists from the first scrape.
        for outcome in [
            AttemptOutcome::Completed,
            AttemptOutcome::Failed,
            AttemptOutcome::Retried,
            AttemptOutcome::Released,
            AttemptOutcome::Delayed,
            AttemptOutcome::WaitingChildren,
        ] {
            let _ = jobs.get_or_create(&Outcome {
                outcome: outcome.label(),
            });
        }
        for result in ["ok", "error"] {
            let _ = downloads.get_or_create(&DownloadResult { result });
        }
        for step in [Step::List, Step::Download, Step::Combine, Step::Import] {
            let _ = steps.get_or_create(&StepLabel { step: step.label() });
        }
        Metrics {
            registry,
            jobs,
            durations,
            rows_imported,
            downloads,
            download_bytes,
            steps,
            monitor_entries,
            days,
            branch_rows,
            branches: Mutex::new(HashSet::new()),
            queue_jobs,
            queue_age,
            queue_up,
            queue_errors,
            queue: OnceLock::new(),
        }
    }

    /// Samples the queue's state on every scrape from now on (the first call wins).
    pub fn watch_queue(&self, sampler: QueueSampler) {
        let _ = self.queue.set(sampler);
    }

    /// Times a pipeline step.
    pub fn observe_step(&self, step: Step, took: Duration) {
        self.steps
            .get_or_create(&StepLabel { step: step.label() })
            .observe(took.as_secs_f64());
    }

    /// Counts a monitor entry written.
    pub fn monitor_entry(&self) {
        self.monitor_entries.inc();
    }

    /// Counts a day's attempt for `branch` (`None`: the job data named no valid branch).
    pub fn day(&self, branch: Option<&str>, outcome: DayOutcome) {
        let branch = self.branch_label(branch);
        self.days
            .get_or_create(&DayLabels {
                branch,
                outcome: outcome.label(),
            })
            .inc();
    }

    /// Counts a finished day's imported and rejected rows for `branch`.
    pub fn branch_rows(&self, branch: &str, imported: u64, rejected: u64) {
        let branch = self.branch_label(Some(branch));
        for (result, n) in [("imported", imported), ("rejected", rejected)] {
            self.branch_rows
                .get_or_create(&RowLabels {
                    branch: branch.clone(),
                    result,
                })
                .inc_by(n);
        }
    }

    /// The label for `branch`: itself while fewer than [`MAX_BRANCH_LABELS`] are known,
    /// `other` past that, `invalid` for none.
    fn branch_label(&self, branch: Option<&str>) -> String {
        let Some(branch) = branch else {
            return "invalid".into();
        };
        let mut known = self
            .branches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.contains(branch) {
            return branch.to_string();
        }
        if known.len() < MAX_BRANCH_LABELS {
            known.insert(branch.to_string());
            return branch.to_string();
        }
        "other".into()
    }

    /// Reads the queue's state (when [`Metrics::watch_queue`] was called), then the text
    /// exposition format: what `/metrics` answers.
    pub async fn scrape(&self) -> String {
        if let Some(sampler) = self.queue.get() {
            match sampler.sample().await {
                Ok(sample) => {
                    for (state, n) in &sample.jobs {
                        self.queue_jobs
                            .get_or_create(&StateLabel {
                                state: state.label(),
                            })
                            .set(i64::try_from(*n).unwrap_or(i64::MAX));
                    }
                    self.queue_age.set(sample.oldest_waiting_age.as_secs_f64());
                    self.queue_up.set(1);
                }
                Err(e) => {
                    // No stale numbers: a dashboard shows a gap, an alert sees `queue_up 0`.
                    tracing::debug!(error.message = %e, "queue metrics: sample failed");
                    self.queue_jobs.clear();
                    self.queue_age.set(f64::NAN);
                    self.queue_up.set(0);
                    self.queue_errors.inc();
                }
            }
        }
        self.encode()
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
