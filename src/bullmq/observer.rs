//! Hooks for whoever wants to count what the worker does (metrics), without this layer
//! knowing how they are exported.

use std::time::Duration;

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

/// Receives the worker's events. Methods must be cheap and must not block.
pub trait Observer: Send + Sync {
    /// An attempt ended after running for `duration` (zero for hand-backs).
    fn attempt_finished(&self, outcome: AttemptOutcome, duration: Duration);
}
