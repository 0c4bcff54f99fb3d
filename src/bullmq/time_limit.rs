//! A time limit per attempt (`JOB_TIMEOUT_MS`), as a processor that wraps another one.
//!
//! Lock renewal keeps a running job alive for as long as its worker lives, so without a limit
//! a job stuck on a slow server (or handed an enormous listing) holds its slot forever. Like
//! Celery's hard time limit, an attempt that runs past the limit is stopped (its future is
//! dropped, so the work's own clean-up guards run) and fails as **retryable**: the job's
//! attempts and backoff decide whether it runs again, as for any other transient failure.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::Value;

use super::processor::{JobContext, ProcessError, Processor};

/// Runs `inner` with at most `limit` per attempt.
pub struct TimeLimit {
    /// The processor whose attempts are limited; dropped mid-attempt when the limit passes.
    inner: Arc<dyn Processor>,
    /// The longest an attempt may run.
    limit: Duration,
}

impl TimeLimit {
    /// Limits every attempt of `inner` to `limit`.
    pub fn new(inner: Arc<dyn Processor>, limit: Duration) -> TimeLimit {
        TimeLimit { inner, limit }
    }
}

impl Processor for TimeLimit {
    fn process(&self, job: JobContext) -> BoxFuture<'static, Result<Value, ProcessError>> {
        let work = self.inner.process(job);
        let limit = self.limit;
        async move {
            match tokio::time::timeout(limit, work).await {
                Ok(outcome) => outcome,
                Err(_) => Err(ProcessError::retryable(format!(
                    "attempt timed out after {} ms (JOB_TIMEOUT_MS)",
                    limit.as_millis()
                ))),
            }
        }
        .boxed()
    }
}
