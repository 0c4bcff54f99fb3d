//! Hooks for whoever wants to know what the worker does (metrics, the app's result cache),
//! without this layer knowing how they are exported or where they are written.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::processor::{Defer, Disposition};

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The job completed.
    Completed,
    /// The job failed for good.
    Failed,
    /// The attempt failed and the job will run again.
    Retried,
    /// The job was handed back to the queue at shutdown.
    Released,
    /// The processor parked the job in `delayed` to run later (not a failure).
    Delayed,
    /// The processor parked the job in `waiting-children` until its children finish (flows).
    WaitingChildren,
}

impl AttemptOutcome {
    /// What observers see of an attempt the worker ended as `disposition`: the same decision,
    /// with a deferral named by where the job went, because the metrics count those apart
    /// (a hand-back to `wait` is labelled `released`, like a hand-back at shutdown).
    pub fn of(disposition: Disposition) -> AttemptOutcome {
        match disposition {
            Disposition::Completed => AttemptOutcome::Completed,
            Disposition::Failed => AttemptOutcome::Failed,
            Disposition::Retried => AttemptOutcome::Retried,
            Disposition::Deferred(Defer::Delayed { .. }) => AttemptOutcome::Delayed,
            Disposition::Deferred(Defer::RateLimited) => AttemptOutcome::Released,
            Disposition::Deferred(Defer::WaitingChildren) => AttemptOutcome::WaitingChildren,
        }
    }

    /// A short lowercase label (`completed`, `failed`, `retried`, `released`, `delayed`,
    /// `waiting-children`).
    pub fn label(self) -> &'static str {
        match self {
            AttemptOutcome::Completed => "completed",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Retried => "retried",
            AttemptOutcome::Released => "released",
            AttemptOutcome::Delayed => "delayed",
            AttemptOutcome::WaitingChildren => "waiting-children",
        }
    }
}

/// How a job ended for good: what its `returnvalue` or `failedReason` now says in Redis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JobEnd<'a> {
    /// Completed with this return value.
    Completed(&'a Value),
    /// Failed for good with this reason (as stored, already capped).
    Failed(&'a str),
}

/// Receives the worker's events. Methods must be cheap and must not block: they run on the
/// job's task right after Redis recorded the outcome.
pub trait Observer: Send + Sync {
    /// An attempt ended after running for `duration` (zero for hand-backs).
    fn attempt_finished(&self, outcome: AttemptOutcome, duration: Duration);

    /// Job `job_id` reached its final state (completed, or failed with no retry left). Called
    /// after the state is in Redis, once per job end; a retried attempt does not call it.
    fn job_finished(&self, job_id: &str, end: JobEnd<'_>) {
        let _ = (job_id, end);
    }

    /// The worker is stopping: resolves once whatever the observer still buffers is written
    /// (or given up on), so a stopped worker has said everything it knew.
    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_disposition_keeps_its_metrics_label() {
        for (disposition, label) in [
            (Disposition::Completed, "completed"),
            (Disposition::Failed, "failed"),
            (Disposition::Retried, "retried"),
            (
                Disposition::Deferred(Defer::Delayed { until_ms: 5 }),
                "delayed",
            ),
            (Disposition::Deferred(Defer::RateLimited), "released"),
            (
                Disposition::Deferred(Defer::WaitingChildren),
                "waiting-children",
            ),
        ] {
            assert_eq!(AttemptOutcome::of(disposition).label(), label);
        }
    }
}
