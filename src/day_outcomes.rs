//! Per-branch day outcomes and rows for `/metrics`, read from what the pipeline's processor
//! returns, so the handler itself does not count them.
//!
//! [`CountDays`] wraps the pipeline's processor: a completed attempt's return value says
//! whether files were imported (`rows.imported`, `rows.rejected`) or none were listed
//! (`"note": "no files"`, a missing day); a failed attempt is `retried` or `failed` as the
//! worker will treat it. Deferrals (a day not due yet, another job importing it) are not
//! outcomes and are not counted.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::bullmq::{Disposition, JobContext, ProcessError, Processor};
use crate::metrics::{DayOutcome, Metrics};
use crate::pipeline::day::Branch;

/// A processor that counts its days' outcomes into [`Metrics`].
pub struct CountDays {
    inner: Arc<dyn Processor>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for CountDays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountDays").finish_non_exhaustive()
    }
}

impl CountDays {
    /// Counts what `inner` does.
    pub fn new(inner: Arc<dyn Processor>, metrics: Arc<Metrics>) -> CountDays {
        CountDays { inner, metrics }
    }
}

impl Processor for CountDays {
    fn process(&self, job: JobContext) -> BoxFuture<'static, Result<Value, ProcessError>> {
        // Only a branch that parses becomes a label: job data is producer input.
        let branch = job
            .data
            .get("branch")
            .and_then(Value::as_str)
            .and_then(|b| Branch::parse(b).ok())
            .map(|b| b.as_str().to_string());
        let attempts = (job.attempts_made, job.attempts);
        let metrics = self.metrics.clone();
        let run = self.inner.process(job);
        async move {
            let outcome = run.await;
            count(&metrics, branch.as_deref(), attempts, &outcome);
            outcome
        }
        .boxed()
    }
}

/// Counts one attempt's `outcome`, for a job with `(attempts_made, attempts)`: whether a
/// failure is retried or final is the worker's own [`Disposition::of`], not worked out again.
fn count(
    metrics: &Metrics,
    branch: Option<&str>,
    (attempts_made, attempts): (u32, u32),
    outcome: &Result<Value, ProcessError>,
) {
    let disposition = Disposition::of(outcome.as_ref().map(drop), attempts_made, attempts);
    let day = match outcome {
        Ok(summary) if summary["note"] == "no files" => DayOutcome::Missing,
        Ok(summary) => {
            let rows = |k: &str| summary["rows"][k].as_u64().unwrap_or(0);
            if let Some(branch) = branch {
                metrics.branch_rows(branch, rows("imported"), rows("rejected"));
            }
            DayOutcome::Completed
        }
        Err(_) => match disposition {
            Disposition::Deferred(_) => return,
            Disposition::Retried => DayOutcome::Retried,
            Disposition::Completed | Disposition::Failed => DayOutcome::Failed,
        },
    };
    metrics.day(branch, day);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_and_errors_become_day_outcomes_per_branch() {
        let m = Metrics::new();
        let done = json!({"branch": "BMC", "rows": {"imported": 40, "rejected": 2}});
        count(&m, Some("BMC"), (0, 3), &Ok(done));
        count(&m, Some("BMC"), (0, 3), &Ok(json!({"note": "no files"})));
        count(&m, Some("BMC"), (0, 3), &Err(ProcessError::retryable("x")));
        count(&m, Some("BMC"), (2, 3), &Err(ProcessError::retryable("x")));
        count(
            &m,
            None,
            (0, 3),
            &Err(ProcessError::permanent("invalid job data")),
        );
        count(
            &m,
            Some("BMC"),
            (0, 3),
            &Err(ProcessError::delayed(1, "wait")),
        );
        let text = m.encode();
        for line in [
            "fetch_worker_days_total{branch=\"BMC\",outcome=\"completed\"} 1",
            "fetch_worker_days_total{branch=\"BMC\",outcome=\"missing\"} 1",
            "fetch_worker_days_total{branch=\"BMC\",outcome=\"retried\"} 1",
            "fetch_worker_days_total{branch=\"BMC\",outcome=\"failed\"} 1",
            "fetch_worker_days_total{branch=\"invalid\",outcome=\"failed\"} 1",
            "fetch_worker_branch_rows_total{branch=\"BMC\",result=\"imported\"} 40",
            "fetch_worker_branch_rows_total{branch=\"BMC\",result=\"rejected\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        // The deferral counted nothing: four BMC outcomes, not five.
        assert_eq!(
            text.matches("fetch_worker_days_total{branch=\"BMC\"")
                .count(),
            4
        );
    }
}
