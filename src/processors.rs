//! Processors for tests, benchmarks and the demo: `noop`, `sleep` and `fail`. They exercise
//! every path of the worker (results, progress, logs, retries, non-retryable failures) without
//! any POS work.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use crate::bullmq::{JobContext, ProcessError, Processor};

/// Completes at once with `{"processed": true, "echo": <data>}`.
#[derive(Debug, Default)]
pub struct Noop;

impl Processor for Noop {
    fn process(&self, job: JobContext) -> BoxFuture<'static, Result<Value, ProcessError>> {
        std::future::ready(Ok(json!({"processed": true, "echo": job.data}))).boxed()
    }
}

/// Sleeps `data.ms` milliseconds (default 0), reporting progress 0, 10, …, 100 and the log
/// lines `sleeping <ms> ms` / `slept <ms> ms`; returns `{"slept": <ms>}`.
///
/// With `data.delayMs`, the job's first run does none of that: it moves the job to `delayed`
/// for that many ms with the reason `delayed for <delayMs> ms` (BullMQ's `DelayedError`), and
/// the next run sleeps as usual. With `data.setData`, the job's data is replaced by that value
/// (BullMQ's `job.updateData`) before it completes. With `data.rateLimitMs`, the job's first
/// run rate-limits the whole queue for that many ms and hands the job back (Node's
/// `worker.rateLimit(ms)` + `RateLimitError`), and the next run sleeps as usual.
///
/// Flows: with `data.waitChildren: true`, a run that finds a pending child parks the job in
/// `waiting-children` first (BullMQ's `moveToWaitingChildren` + `WaitingChildrenError`); the
/// run after the last child finished finds none and carries on. With
/// `data.returnChildren: true` the result also carries `children`, the children's return
/// values keyed by child job key (BullMQ's `job.getChildrenValues()`).
#[derive(Debug, Default)]
pub struct Sleep;

impl Processor for Sleep {
    fn process(&self, job: JobContext) -> BoxFuture<'static, Result<Value, ProcessError>> {
        async move {
            let ms = whole_ms(&job.data, "ms")?.unwrap_or(0);
            if let Some(delay_ms) = whole_ms(&job.data, "delayMs")?
                && job.attempts_started <= 1
            {
                let until = crate::bullmq::clock::now_ms() + delay_ms;
                return Err(ProcessError::delayed(
                    until,
                    format!("delayed for {delay_ms} ms"),
                ));
            }
            let h = &job.handle;
            let report = |e: crate::bullmq::Error| ProcessError::retryable(e.to_string());
            if let Some(limit_ms) = whole_ms(&job.data, "rateLimitMs")?
                && job.attempts_started <= 1
            {
                h.rate_limit(limit_ms).await.map_err(report)?;
                return Err(ProcessError::rate_limited());
            }
            if flag(&job.data, "waitChildren")
                && h.move_to_waiting_children(None).await.map_err(report)?
            {
                return Err(ProcessError::waiting_children());
            }
            h.log(&format!("sleeping {ms} ms")).await.map_err(report)?;
            h.progress(&json!(0)).await.map_err(report)?;
            let step = Duration::from_millis(ms / 10);
            for pct in (10..=100).step_by(10) {
                tokio::time::sleep(step).await;
                if pct < 100 {
                    h.progress(&json!(pct)).await.map_err(report)?;
                }
            }
            tokio::time::sleep(Duration::from_millis(ms % 10)).await;
            h.progress(&json!(100)).await.map_err(report)?;
            h.log(&format!("slept {ms} ms")).await.map_err(report)?;
            if let Some(new_data) = job.data.get("setData") {
                h.update_data(new_data).await.map_err(report)?;
            }
            if flag(&job.data, "returnChildren") {
                let children = h.children_values().await.map_err(report)?;
                return Ok(json!({"slept": ms, "children": children}));
            }
            Ok(json!({"slept": ms}))
        }
        .boxed()
    }
}

/// True when `data.<field>` is the JSON `true`.
fn flag(data: &Value, field: &str) -> bool {
    data.get(field).and_then(Value::as_bool) == Some(true)
}

/// Reads `data.<field>` as a whole number of milliseconds; absent or null is `None`.
fn whole_ms(data: &Value, field: &str) -> Result<Option<u64>, ProcessError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ProcessError::permanent(format!("data.{field} must be a whole number, got {v}"))
        }),
    }
}

/// Fails with `data.message` (default `failed by request`); non-retryable when `data.fatal`
/// is true; discarded (a plain error, never retried: BullMQ's `job.discard()`) when
/// `data.discard` is true; from attempt `data.succeedOnAttempt` on, succeeds with
/// `{"succeededOnAttempt": n}`.
#[derive(Debug, Default)]
pub struct Fail;

impl Processor for Fail {
    fn process(&self, job: JobContext) -> BoxFuture<'static, Result<Value, ProcessError>> {
        let attempt = job.attempts_made + 1;
        let data = job.data;
        let result = match data.get("succeedOnAttempt").and_then(Value::as_u64) {
            Some(n) if u64::from(attempt) >= n => Ok(json!({"succeededOnAttempt": n})),
            _ => {
                let message = data
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("failed by request")
                    .to_string();
                if data.get("fatal").and_then(Value::as_bool) == Some(true) {
                    Err(ProcessError::permanent(message))
                } else if data.get("discard").and_then(Value::as_bool) == Some(true) {
                    Err(ProcessError::discarded(message))
                } else {
                    Err(ProcessError::retryable(message))
                }
            }
        };
        std::future::ready(result).boxed()
    }
}
