//! The seam between the queue and the work: a [`Processor`] gets a job's name and data plus
//! progress and log handles, and returns a JSON result or a typed [`ProcessError`].

use std::sync::Arc;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use serde_json::Value;

use super::error::Error;
use super::keys::QueueKeys;
use super::scripts;

/// Does the work of one job attempt.
///
/// Implementations must not panic on bad input: return [`ProcessError::permanent`] instead. A
/// panic is still caught at the task boundary and fails the attempt.
pub trait Processor: Send + Sync + 'static {
    /// Processes one attempt of `job`.
    fn process(&self, job: JobContext) -> BoxFuture<'static, Result<Value, ProcessError>>;
}

/// Why an attempt failed, and whether another attempt could succeed.
#[derive(Debug, Clone)]
pub struct ProcessError {
    /// The message stored as `failedReason` (a person reads it in Bull Board).
    pub message: String,
    /// False for bad input and other failures a retry cannot fix: the job fails at once.
    pub retryable: bool,
    /// Extra lines for the stack trace entry (for example an error's cause chain).
    pub detail: Vec<String>,
}

impl ProcessError {
    /// A failure that is retried when `retryable` (the caller's error says whether it is
    /// transient) and fails the job at once otherwise.
    pub fn new(message: impl Into<String>, retryable: bool) -> ProcessError {
        ProcessError {
            message: message.into(),
            retryable,
            detail: Vec::new(),
        }
    }

    /// A failure worth retrying (network, a busy server).
    pub fn retryable(message: impl Into<String>) -> ProcessError {
        ProcessError {
            message: message.into(),
            retryable: true,
            detail: Vec::new(),
        }
    }

    /// A failure no retry can fix (bad job data): BullMQ's `UnrecoverableError`.
    pub fn permanent(message: impl Into<String>) -> ProcessError {
        ProcessError {
            message: message.into(),
            retryable: false,
            detail: Vec::new(),
        }
    }

    /// The stack trace entry stored for this failure, shaped like a JavaScript stack.
    pub fn stack_entry(&self) -> String {
        let kind = if self.retryable {
            "Error"
        } else {
            "UnrecoverableError"
        };
        let mut s = format!("{kind}: {}", self.message);
        for line in &self.detail {
            s.push_str("\n    at ");
            s.push_str(line);
        }
        s
    }
}

/// What a processor sees of a job.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// Job id.
    pub id: String,
    /// Job name.
    pub name: String,
    /// Job data.
    pub data: Value,
    /// Attempts ended before this one.
    pub attempts_made: u32,
    /// The job's `opts.attempts` (0 or 1: this is the only attempt).
    pub attempts: u32,
    /// Progress and log handle.
    pub handle: JobHandle,
}

/// Reports progress and log lines for one job. Cheap to clone.
#[derive(Clone)]
pub struct JobHandle {
    pub(crate) keys: Arc<QueueKeys>,
    pub(crate) con: ConnectionManager,
    pub(crate) id: String,
    pub(crate) keep_logs: Option<u64>,
}

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle").field("id", &self.id).finish()
    }
}

impl JobHandle {
    /// Stores `progress` on the job and emits a `progress` event.
    ///
    /// # Errors
    ///
    /// Redis errors, or the job is gone.
    pub async fn progress(&self, progress: &Value) -> Result<(), Error> {
        let mut con = self.con.clone();
        scripts::update_progress::call(&mut con, &self.keys, &self.id, &progress.to_string()).await
    }

    /// Appends a line to the job's log (`Job.getLogs` / Bull Board's Logs tab).
    ///
    /// # Errors
    ///
    /// Redis errors, or the job is gone.
    pub async fn log(&self, line: &str) -> Result<(), Error> {
        let mut con = self.con.clone();
        scripts::add_log::call(&mut con, &self.keys, &self.id, line, self.keep_logs)
            .await
            .map(drop)
    }
}
