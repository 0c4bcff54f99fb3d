//! The seam between the queue and the work: a [`Processor`] gets a job's name and data plus
//! progress and log handles, and returns a JSON result or a typed [`ProcessError`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::redis_conn::RedisConn;
use futures_util::future::BoxFuture;
use serde_json::Value;

use super::children;
use super::error::Error;
use super::keys::QueueKeys;
use super::lock::LockTable;
use super::scripts::add_log::AddLog;
use super::scripts::move_to_waiting_children::MoveToWaitingChildren;
use super::scripts::update_data::UpdateData;
use super::scripts::update_progress::UpdateProgress;

/// The most bytes of a failure's message kept in `failedReason`, the stack trace entry and the
/// result cache. A failure text is for a person; anything longer is an echo of input (20 MB of
/// job data once became a 20 MB `failedReason`, stack trace and cache entry).
pub const MAX_FAILURE_BYTES: usize = 4096;

/// The most extra stack trace lines kept per failure ([`ProcessError::detail`]).
pub const MAX_DETAIL_LINES: usize = 16;

/// The most bytes of one job log line ([`JobHandle::log`]).
pub const MAX_LOG_LINE_BYTES: usize = 4096;

/// `text` cut to at most `max` bytes (at a character boundary), with a note saying how much
/// was cut; borrowed unchanged when it fits.
pub fn cap_text(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!(
        "{}… [{} more bytes cut]",
        &text[..end],
        text.len() - end
    ))
}

/// Does the work of one job attempt.
///
/// Implementations must not panic on bad input: return [`ProcessError::permanent`] instead. A
/// panic is still caught at the task boundary and fails the attempt.
pub trait Processor: Send + Sync + 'static {
    /// Processes one attempt of `job`.
    fn process(&self, job: JobContext) -> BoxFuture<'static, Result<Value, ProcessError>>;
}

/// What a failure keeps of the error that caused it. Shared, so a [`ProcessError`] stays
/// `Clone` (the worker may try to store one failure several times).
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why an attempt did not complete: a failure (retried or not), or a request to park the job
/// and run it again later without counting the attempt ([`ProcessError::delayed`]).
///
/// A failure says what was being done in [`ProcessError::message`] and keeps the error that
/// caused it as its [`std::error::Error::source`], so whoever reads it (the job's
/// `failedReason`, the worker's log) sees the whole chain, down to what the driver said:
/// [`ProcessError::reason`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProcessError {
    /// What failed, in words a person reads in Bull Board (the head of `failedReason`); for a
    /// deferral, the line appended to the job's log.
    pub message: String,
    /// False for bad input and other failures a retry cannot fix: the job fails at once.
    /// Always false for a deferral, so callers that retry on their own leave it alone.
    pub retryable: bool,
    /// Extra lines for the stack trace entry.
    pub detail: Vec<String>,
    /// Set by [`ProcessError::discarded`]: a plain error that must not be retried (Node's
    /// `job.discard()` before throwing), as opposed to an `UnrecoverableError`.
    pub discarded: bool,
    /// Set when this is not a failure but a request to move the job elsewhere.
    pub defer: Option<Defer>,
    /// The error that caused this failure, if any ([`ProcessError::caused_by`]).
    #[source]
    pub source: Option<Cause>,
}

/// Where a processor asks its job to go instead of failing. None of these counts an attempt,
/// writes `failedReason` or emits `failed`, as with BullMQ's `DelayedError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defer {
    /// To `delayed`, due at this time (ms since the Unix epoch; a past time means now).
    Delayed {
        /// Due time, ms since the Unix epoch.
        until_ms: u64,
    },
    /// Back to the front of `wait` because the queue is rate limited (BullMQ's
    /// `RateLimitError`); the worker claims nothing more until the queue's limiter expires.
    RateLimited,
    /// Already in `waiting-children`: the processor moved it there with
    /// [`JobHandle::move_to_waiting_children`], so the worker only lets go of it.
    WaitingChildren,
}

/// The message of BullMQ's `RateLimitError`.
pub const RATE_LIMIT_MESSAGE: &str = "bullmq:rateLimitExceeded";

/// The value Node's `Worker.rateLimit` stores in the limiter key (`Number.MAX_SAFE_INTEGER`):
/// above any `max`, so every limiting worker sees the queue as limited until the key expires.
const MANUAL_LIMIT: u64 = 9_007_199_254_740_991;

impl ProcessError {
    /// A failure that is retried when `retryable` (the caller's error says whether it is
    /// transient) and fails the job at once otherwise.
    pub fn new(message: impl Into<String>, retryable: bool) -> ProcessError {
        ProcessError {
            message: message.into(),
            retryable,
            detail: Vec::new(),
            discarded: false,
            defer: None,
            source: None,
        }
    }

    /// A failure worth retrying (network, a busy server).
    pub fn retryable(message: impl Into<String>) -> ProcessError {
        ProcessError {
            message: message.into(),
            retryable: true,
            detail: Vec::new(),
            discarded: false,
            defer: None,
            source: None,
        }
    }

    /// A failure no retry can fix (bad job data): BullMQ's `UnrecoverableError`.
    pub fn permanent(message: impl Into<String>) -> ProcessError {
        ProcessError {
            message: message.into(),
            retryable: false,
            detail: Vec::new(),
            discarded: false,
            defer: None,
            source: None,
        }
    }

    /// A failure that ends the job now although attempts remain, Node's `job.discard()`
    /// followed by a plain `throw new Error(message)`: no retry, no `retries-exhausted`, and
    /// the stack entry reads `Error:` (not `UnrecoverableError:`).
    pub fn discarded(message: impl Into<String>) -> ProcessError {
        ProcessError {
            discarded: true,
            ..ProcessError::permanent(message)
        }
    }

    /// Not a failure: park the job in `delayed` until `until_ms` (ms since the Unix epoch) and
    /// run it again then, BullMQ's `moveToDelayed` + `DelayedError`. The attempt is not
    /// counted, `failedReason` is left alone, and `reason` is appended to the job's log so a
    /// person sees why it waits. Use it for work that is not ready yet (an export that
    /// appears later), not for errors: those are [`ProcessError::retryable`].
    pub fn delayed(until_ms: u64, reason: impl Into<String>) -> ProcessError {
        ProcessError {
            message: reason.into(),
            retryable: false,
            detail: Vec::new(),
            discarded: false,
            defer: Some(Defer::Delayed { until_ms }),
            source: None,
        }
    }

    /// Not a failure: hand the job back to the front of `wait` because the queue is rate
    /// limited, BullMQ's `RateLimitError`. The attempt is not counted and nothing is logged;
    /// the worker then claims nothing until the queue's limiter expires (its remaining time,
    /// capped at 30 s like Node's `maximumRateLimitDelay`). Set the limit first with
    /// [`JobHandle::rate_limit`] (Node's `worker.rateLimit(ms)`); without one the job is
    /// simply handed back.
    pub fn rate_limited() -> ProcessError {
        ProcessError {
            message: RATE_LIMIT_MESSAGE.to_string(),
            retryable: false,
            detail: Vec::new(),
            discarded: false,
            defer: Some(Defer::RateLimited),
            source: None,
        }
    }

    /// Not a failure: the processor parked the job in `waiting-children` with
    /// [`JobHandle::move_to_waiting_children`] (which returned `true`) and stops here, BullMQ's
    /// `WaitingChildrenError`. The worker changes nothing in Redis: the attempt is not
    /// counted, and the job runs again from the start once its last child finishes.
    pub fn waiting_children() -> ProcessError {
        ProcessError {
            message: "waiting for children".to_string(),
            retryable: false,
            detail: Vec::new(),
            discarded: false,
            defer: Some(Defer::WaitingChildren),
            source: None,
        }
    }

    /// The due time when this asks for [`ProcessError::delayed`].
    pub fn delayed_until(&self) -> Option<u64> {
        match self.defer {
            Some(Defer::Delayed { until_ms }) => Some(until_ms),
            _ => None,
        }
    }

    /// A failure while doing `message` (`"listing failed"`), caused by `source`: retried when
    /// `retryable` (the source's own classification, usually), failed at once otherwise.
    pub fn caused_by(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
        retryable: bool,
    ) -> ProcessError {
        ProcessError {
            source: Some(Arc::new(source)),
            ..ProcessError::new(message, retryable)
        }
    }

    /// The text stored as `failedReason`: the message, then each cause in the source chain,
    /// `message: cause: cause…`. A cause whose text its parent already printed (an error
    /// that shows its source in its own message) is not repeated.
    pub fn reason(&self) -> String {
        let mut text = self.message.clone();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            let line = cause.to_string();
            if !line.is_empty() && !text.contains(&line) {
                text.push_str(": ");
                text.push_str(&line);
            }
            next = cause.source();
        }
        text
    }

    /// The same failure as stored text: its [`ProcessError::reason`] (the chain folded into
    /// the message, so the source is dropped) cut to [`MAX_FAILURE_BYTES`], and its detail to
    /// [`MAX_DETAIL_LINES`] lines of at most that size. The worker applies it before anything
    /// is stored or logged.
    pub fn capped(mut self) -> ProcessError {
        let reason = self.reason();
        self.message = cap_text(&reason, MAX_FAILURE_BYTES).into_owned();
        self.source = None;
        self.detail.truncate(MAX_DETAIL_LINES);
        for line in &mut self.detail {
            if let Cow::Owned(cut) = cap_text(line, MAX_FAILURE_BYTES) {
                *line = cut;
            }
        }
        self
    }

    /// The stack trace entry stored for this failure, shaped like a JavaScript stack.
    pub fn stack_entry(&self) -> String {
        let kind = if self.retryable || self.discarded {
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

/// What becomes of a job after one attempt's result. Decided once, here, by
/// [`Disposition::of`]: the worker acts on it, and a processor that must know whether this
/// attempt is the job's last (to leave a note for a person) asks the same function rather
/// than redoing the attempt arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The attempt succeeded: the job completes.
    Completed,
    /// Not a failure: the job moves where the processor asked (delayed, back to wait,
    /// waiting-children) without using an attempt. The [`Defer`] rides along so the worker
    /// acts on this one value and never looks back into the error to find where.
    Deferred(Defer),
    /// The attempt failed and the job runs again.
    Retried,
    /// The job fails for good: a failure no retry can fix, or its last attempt.
    Failed,
}

impl Disposition {
    /// The disposition of an attempt that ended with `result`, for a job that had
    /// `attempts_made` attempts before this one and allows `attempts` (`opts.attempts`; 0 or
    /// 1 both mean one).
    pub fn of(result: Result<(), &ProcessError>, attempts_made: u32, attempts: u32) -> Self {
        match result {
            Ok(()) => Disposition::Completed,
            Err(ProcessError {
                defer: Some(defer), ..
            }) => Disposition::Deferred(*defer),
            Err(err) if !err.retryable => Disposition::Failed,
            Err(_) if attempts_made.saturating_add(1) < attempts => Disposition::Retried,
            Err(_) => Disposition::Failed,
        }
    }
}

/// What a processor sees of a job.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job's id: what its Redis keys are named by, and what logs and results quote.
    pub id: String,
    /// The job's name, as the producer gave it: lets one processor serve several kinds of job.
    pub name: String,
    /// The job's data (its `data` field, parsed): the processor's whole input.
    pub data: Value,
    /// Attempts ended before this one.
    pub attempts_made: u32,
    /// Times the job was claimed, this claim included (`attemptsStarted`). Unlike
    /// `attempts_made` it also counts runs that deferred the job, so a processor can tell its
    /// first run from a run after [`ProcessError::delayed`].
    pub attempts_started: u32,
    /// The job's `opts.attempts` (0 or 1: this is the only attempt).
    pub attempts: u32,
    /// Progress and log handle.
    pub handle: JobHandle,
}

impl JobContext {
    /// What `result` makes of this job ([`Disposition::of`] with its attempt counts).
    pub fn disposition(&self, result: Result<(), &ProcessError>) -> Disposition {
        Disposition::of(result, self.attempts_made, self.attempts)
    }
}

/// Reports progress and log lines for one job, and reads or waits for its children (flows).
/// Cheap to clone.
#[derive(Clone)]
pub struct JobHandle {
    pub(crate) keys: Arc<QueueKeys>,
    pub(crate) con: RedisConn,
    pub(crate) id: String,
    pub(crate) keep_logs: Option<u64>,
    /// The lock token of this attempt, for the moves only the lock owner may make.
    pub(crate) token: String,
    /// The worker's lock table: a job that gave its lock up (parked in `waiting-children`)
    /// leaves it, so renewal does not report the lock lost and shutdown does not hand it back.
    pub(crate) locks: LockTable,
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
        let progress = progress.to_string();
        UpdateProgress {
            job_id: &self.id,
            progress_json: &progress,
        }
        .call(&mut con, &self.keys)
        .await
    }

    /// Replaces the job's data (Node's `job.updateData`): later attempts, Bull Board and
    /// Node readers see `data`. The running attempt keeps the [`JobContext::data`] it got.
    ///
    /// # Errors
    ///
    /// Redis errors, or the job is gone.
    pub async fn update_data(&self, data: &Value) -> Result<(), Error> {
        let mut con = self.con.clone();
        let data = data.to_string();
        UpdateData {
            job_id: &self.id,
            data_json: &data,
        }
        .call(&mut con, &self.keys)
        .await
    }

    /// Parks the job in `waiting-children` when it has a pending child (Node's
    /// `job.moveToWaitingChildren(token, {child})`): `child_key` (a full job key,
    /// `P:Q:<id>`) or, with `None`, any child. On `true` the job has left `active` and its lock
    /// is released: return [`ProcessError::waiting_children`] right away; the job runs again
    /// from the start when its last child finishes. On `false` nothing is pending and the
    /// attempt carries on.
    ///
    /// # Errors
    ///
    /// Redis errors; a `failParentOnFailure` child failed (`FailedChildren`); the job is gone
    /// or no longer ours.
    pub async fn move_to_waiting_children(&self, child_key: Option<&str>) -> Result<bool, Error> {
        let mut con = self.con.clone();
        let moved = MoveToWaitingChildren {
            now_ms: super::clock::now_ms(),
            job_id: &self.id,
            token: &self.token,
            child_key,
        }
        .call(&mut con, &self.keys)
        .await?;
        if moved {
            self.locks.untrack(&self.id);
        }
        Ok(moved)
    }

    /// The return values of the job's completed children, keyed by child job key (Node's
    /// `job.getChildrenValues()`); see [`children::children_values`].
    ///
    /// # Errors
    ///
    /// Redis errors; a stored value that is not JSON.
    pub async fn children_values(&self) -> Result<BTreeMap<String, Value>, Error> {
        let mut con = self.con.clone();
        children::children_values(&mut con, &self.keys, &self.id).await
    }

    /// The failure reasons of children whose failure the job ignores or tolerates, keyed by
    /// child job key (Node's `job.getIgnoredChildrenFailures()`).
    ///
    /// # Errors
    ///
    /// Redis errors.
    pub async fn ignored_children_failures(&self) -> Result<BTreeMap<String, String>, Error> {
        let mut con = self.con.clone();
        children::ignored_children_failures(&mut con, &self.keys, &self.id).await
    }

    /// Rate-limits the whole queue for `ms` milliseconds, Node's `worker.rateLimit(ms)` (and
    /// `queue.rateLimit`): sets the queue's `limiter` key so that no worker limiting this
    /// queue (ours with `RATE_LIMIT_MAX`, Node's with `limiter`) starts a job until it expires.
    /// Follow it with [`ProcessError::rate_limited`] to hand this job back.
    ///
    /// # Errors
    ///
    /// Redis errors.
    pub async fn rate_limit(&self, ms: u64) -> Result<(), Error> {
        let mut con = self.con.clone();
        let _: () = redis::cmd("SET")
            .arg(&self.keys.limiter)
            .arg(MANUAL_LIMIT)
            .arg("PX")
            .arg(ms.max(1))
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Appends a line to the job's log (`Job.getLogs` / Bull Board's Logs tab), cut to
    /// [`MAX_LOG_LINE_BYTES`].
    ///
    /// # Errors
    ///
    /// Redis errors, or the job is gone.
    pub async fn log(&self, line: &str) -> Result<(), Error> {
        let mut con = self.con.clone();
        let line = cap_text(line, MAX_LOG_LINE_BYTES);
        AddLog {
            job_id: &self.id,
            line: &line,
            keep: self.keep_logs,
        }
        .call(&mut con, &self.keys)
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_entries_name_the_node_error_class() {
        assert!(
            ProcessError::retryable("x")
                .stack_entry()
                .starts_with("Error: x")
        );
        assert!(
            ProcessError::permanent("x")
                .stack_entry()
                .starts_with("UnrecoverableError: x")
        );
        let discarded = ProcessError::discarded("x");
        assert!(!discarded.retryable);
        assert!(discarded.stack_entry().starts_with("Error: x"));
        let delayed = ProcessError::delayed(42, "later");
        assert_eq!(delayed.delayed_until(), Some(42));
        assert!(
            !delayed.retryable,
            "callers that retry by themselves leave a deferral alone"
        );
        assert_eq!(ProcessError::retryable("x").delayed_until(), None);
        let limited = ProcessError::rate_limited();
        assert_eq!(limited.defer, Some(Defer::RateLimited));
        assert_eq!(limited.message, "bullmq:rateLimitExceeded");
        assert_eq!(limited.delayed_until(), None);
        assert!(!limited.retryable);
        let parked = ProcessError::waiting_children();
        assert_eq!(parked.defer, Some(Defer::WaitingChildren));
        assert_eq!(parked.delayed_until(), None);
        assert!(!parked.retryable);
    }

    /// Issue 13: a failure keeps its cause, and what is stored shows the whole chain with the
    /// failure's own message as its head.
    #[test]
    fn a_failure_keeps_its_cause_chain_and_stores_it_as_text() {
        #[derive(Debug, thiserror::Error)]
        #[error("connection refused")]
        struct Refused;
        #[derive(Debug, thiserror::Error)]
        #[error("mongodb insert")]
        struct Insert(#[source] Refused);
        #[derive(Debug, thiserror::Error)]
        #[error("request failed: connection refused")]
        struct Repeats(#[source] Refused);

        let err = ProcessError::caused_by("import failed", Insert(Refused), true);
        assert!(err.retryable);
        assert_eq!(err.to_string(), "import failed");
        let causes: Vec<String> =
            std::iter::successors(std::error::Error::source(&err), |e| e.source())
                .map(|e| e.to_string())
                .collect();
        assert_eq!(causes, ["mongodb insert", "connection refused"]);
        assert_eq!(
            err.reason(),
            "import failed: mongodb insert: connection refused"
        );
        let stored = err.clone().capped();
        assert_eq!(
            stored.message,
            "import failed: mongodb insert: connection refused"
        );
        assert!(stored.source.is_none(), "folded into the text once");
        assert_eq!(
            stored.reason(),
            stored.message,
            "capping twice changes nothing"
        );
        assert!(
            stored
                .stack_entry()
                .starts_with("Error: import failed: mongodb insert: connection refused")
        );
        // A cause its parent already printed is not repeated.
        let err = ProcessError::caused_by("listing failed", Repeats(Refused), false);
        assert_eq!(
            err.reason(),
            "listing failed: request failed: connection refused"
        );
        assert_eq!(ProcessError::permanent("plain").reason(), "plain");
    }

    #[test]
    fn one_function_decides_what_an_attempt_makes_of_its_job() {
        use Disposition::*;
        let retry = ProcessError::retryable("net");
        let fatal = ProcessError::permanent("bad data");
        let discarded = ProcessError::discarded("stop");
        let later = ProcessError::delayed(1, "later");
        for (result, made, attempts, want) in [
            (Ok(()), 0, 3, Completed),
            (Ok(()), 2, 3, Completed),
            (Err(&retry), 0, 3, Retried),
            (Err(&retry), 1, 3, Retried),
            (Err(&retry), 2, 3, Failed),
            (Err(&retry), 5, 3, Failed),
            (Err(&retry), 0, 1, Failed),
            (Err(&retry), 0, 0, Failed),
            (Err(&fatal), 0, 3, Failed),
            (Err(&discarded), 0, 3, Failed),
            (Err(&later), 2, 3, Deferred(Defer::Delayed { until_ms: 1 })),
            (Err(&later), 0, 0, Deferred(Defer::Delayed { until_ms: 1 })),
            (Err(&retry), u32::MAX, u32::MAX, Failed),
        ] {
            assert_eq!(
                Disposition::of(result, made, attempts),
                want,
                "{result:?} after {made} of {attempts}"
            );
        }
    }

    #[test]
    fn long_texts_are_cut_at_a_character_boundary_with_a_note() {
        assert!(matches!(cap_text("short", 10), Cow::Borrowed("short")));
        let cut = cap_text("ééééé", 3);
        assert_eq!(cut, "é… [8 more bytes cut]");
        // 20 MiB once came in as job data and came back as the failure text. The detail lines
        // are shorter: enough to be cut, without 1,000 copies of 20 MiB (20 GiB) in memory.
        let huge = "x".repeat(20 << 20);
        let long_line = "y".repeat(8 * MAX_FAILURE_BYTES);
        let err = ProcessError {
            message: format!("invalid job data: got {huge}"),
            retryable: false,
            detail: vec![long_line; 1000],
            discarded: false,
            defer: None,
            source: None,
        }
        .capped();
        assert!(
            err.message.len() < MAX_FAILURE_BYTES + 64,
            "{}",
            err.message.len()
        );
        assert!(err.message.starts_with("invalid job data: got xxx"));
        assert!(err.message.ends_with("more bytes cut]"));
        assert_eq!(err.detail.len(), MAX_DETAIL_LINES);
        assert!(err.stack_entry().len() < 20 * (MAX_FAILURE_BYTES + 64));
        let small = ProcessError::retryable("fine").capped();
        assert_eq!(small.message, "fine");
    }
}
