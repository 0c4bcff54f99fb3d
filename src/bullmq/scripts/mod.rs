//! One wrapper per Lua script, in the shape of mini-redis's `cmd/`: one request struct per
//! script, with named fields where the script takes positional ARGV.
//!
//! Each request (`move_to_finished::MoveToFinished`, …) has:
//! - `script()`: the flattened Lua it runs (from [`lua`](super::lua), the loader);
//! - `keys()` and `args()`: its KEYS and ARGV in the order of the Lua header, pure functions
//!   with a unit test each, so a reordered argument fails a test rather than a job;
//! - `call()`: runs it and decodes the reply. Negative codes become
//!   [`Error::Script`](super::Error::Script) in exactly one place,
//!   [`Error::check`](super::Error::check).
//!
//! Callers build a request and call it; none spells a KEYS array. A test below checks that
//! each request builds as many KEYS as its Lua file's name says (`moveToFinished-13.lua`).

pub mod add_log;
pub mod add_standard_job;
pub mod extend_locks;
pub mod move_job_from_active_to_wait;
pub mod move_stalled_jobs_to_wait;
pub mod move_to_active;
pub mod move_to_delayed;
pub mod move_to_finished;
pub mod move_to_finished_batch;
pub mod move_to_waiting_children;
pub mod retry_job;
pub mod update_data;
pub mod update_job_scheduler;
pub mod update_progress;

use std::time::Duration;

use redis::Value;

use super::error::Error;
use super::job::{CLAIM_FIELDS, Job};
use super::options::Compat;

/// What a claim (moveToActive, or fetch-next) produced.
#[derive(Debug)]
pub enum Claim {
    /// A job, locked with the caller's token.
    Job(Box<Job>),
    /// Rate limited: try again in this many ms.
    RateLimited(u64),
    /// No job ready; the earliest delayed job is due at this time (ms since epoch).
    NextDelayedAt(u64),
    /// Nothing to do: empty, paused, or at global concurrency.
    Empty,
}

/// The worker-level part of every claim: who claims, for how long, under what rate limit.
#[derive(Debug, Clone)]
pub struct ClaimArgs {
    /// The lock token (`<worker uuid>:<n>`).
    pub token: String,
    /// Lock time-to-live of the claimed job; sent to Redis in ms (see [`arg_ms`]).
    pub lock: Duration,
    /// Worker name (`pb`), if any.
    pub worker_name: Option<String>,
    /// Worker rate limit `(max, duration ms)`, if any.
    pub limiter: Option<(u64, u64)>,
    /// Which major's paused-queue rule applies.
    pub compat: Compat,
}

impl ClaimArgs {
    fn limiter_args(&self) -> [Vec<u8>; 2] {
        match self.limiter {
            Some((max, ms)) => [arg(max), arg(ms)],
            None => [Vec::new(), Vec::new()],
        }
    }
}

/// One script argument.
pub(crate) fn arg(v: impl ToString) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// A duration as the scripts take it: whole milliseconds. Durations stay `Duration` in the
/// worker and become ms only here, at the Redis edge.
pub(crate) fn arg_ms(d: Duration) -> Vec<u8> {
    arg(d.as_millis() as u64)
}

/// Decodes the reply of a script that ends an attempt and may claim the next job
/// (`moveToFinished`, `moveToDelayed`): an integer is the script's status, an error code or 0
/// when nothing was claimed; anything else is the claimed job.
pub(crate) fn decode_end_and_claim(
    script: &'static str,
    job_id: &str,
    reply: Value,
) -> Result<Claim, Error> {
    if let Value::Int(code) = reply {
        Error::check(script, job_id, code)?;
        return Ok(Claim::Empty);
    }
    decode_claim(script, reply)
}

/// Decodes `{fields|0, id|0, ttl, due}`, or an integer reply (`0` = nothing claimed).
pub(crate) fn decode_claim(script: &'static str, reply: Value) -> Result<Claim, Error> {
    let bad = |reason: &str| Error::Reply {
        script,
        reason: reason.to_string(),
    };
    let items = match reply {
        Value::Int(0) | Value::Nil => return Ok(Claim::Empty),
        Value::Int(code) => {
            Error::check(script, "?", code)?;
            return Ok(Claim::Empty);
        }
        Value::Array(items) => items,
        _ => return Err(bad("expected an array")),
    };
    let int = |v: Option<Value>| match v {
        Some(Value::Int(n)) => n,
        _ => 0,
    };
    // The reply is owned: its strings become the job's without a copy.
    let mut items = items.into_iter();
    let fields = match items.next() {
        Some(Value::Array(fields)) => fields,
        // `{0, 0, ttl, due}`: no job.
        _ => {
            let ttl = int(items.nth(1));
            let due = int(items.next());
            return Ok(if ttl > 0 {
                Claim::RateLimited(ttl as u64)
            } else if due > 0 {
                Claim::NextDelayedAt(due as u64)
            } else {
                Claim::Empty
            });
        }
    };
    let id = items
        .next()
        .and_then(owned_text)
        .ok_or_else(|| bad("job id missing"))?;
    let fields = fields
        .into_iter()
        .take(CLAIM_FIELDS)
        .map(owned_text)
        .collect();
    Ok(Claim::Job(Box::new(Job::from_claim(id, fields))))
}

/// A reply item as text, taking its bytes (a bulk string that is not UTF-8 is read lossily,
/// as Node would). `None` for nil and anything else that is not a string or an integer.
fn owned_text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(
            String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
        Value::SimpleString(s) => Some(s),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bullmq::keys::QueueKeys;
    use crate::bullmq::lua::{COMMANDS, Script};
    use crate::bullmq::options::KeepJobs;

    /// Every wrapper's KEYS count equals the number in its Lua file's name, which
    /// `lua::tests` also checks against the header and the body: the three agree.
    #[test]
    fn every_wrapper_builds_as_many_keys_as_its_lua_file_names() {
        let q = QueueKeys::new("bull", "q");
        let claim = ClaimArgs {
            token: "t".into(),
            lock: Duration::from_secs(1),
            worker_name: None,
            limiter: None,
            compat: Compat::Auto,
        };
        let done = move_to_finished::Outcome::Completed {
            returnvalue: "1".into(),
        };
        let jobs = [("1".to_string(), "t".to_string())];
        let built: Vec<(&Script, usize)> = vec![
            (
                add_log::AddLog::script(),
                add_log::AddLog {
                    job_id: "1",
                    line: "l",
                    keep: None,
                }
                .keys(&q)
                .len(),
            ),
            (
                add_standard_job::AddStandardJob::script(),
                add_standard_job::AddStandardJob {
                    id: "1",
                    name: "n",
                    data_json: "{}",
                    opts_json: "{}",
                    timestamp_ms: 1,
                    compat: Compat::Auto,
                }
                .keys(&q)
                .len(),
            ),
            (
                extend_locks::ExtendLocks::script(),
                extend_locks::ExtendLocks {
                    lock: Duration::from_secs(1),
                    jobs: &jobs,
                }
                .keys(&q)
                .len(),
            ),
            (
                move_job_from_active_to_wait::MoveJobFromActiveToWait::script(),
                move_job_from_active_to_wait::MoveJobFromActiveToWait {
                    job_id: "1",
                    token: "t",
                    compat: Compat::Auto,
                }
                .keys(&q)
                .len(),
            ),
            (
                move_stalled_jobs_to_wait::MoveStalledJobsToWait::script(),
                move_stalled_jobs_to_wait::MoveStalledJobsToWait {
                    now_ms: 1,
                    max_stalled_count: 1,
                    interval_ms: 1000,
                    compat: Compat::Auto,
                }
                .keys(&q)
                .len(),
            ),
            (
                move_to_active::MoveToActive::script(),
                move_to_active::MoveToActive {
                    now_ms: 1,
                    claim: &claim,
                }
                .keys(&q)
                .len(),
            ),
            (
                move_to_delayed::MoveToDelayed::script(),
                move_to_delayed::MoveToDelayed {
                    now_ms: 1,
                    job_id: "1",
                    delay_ms: 10,
                    failure: None,
                    fetch_next: false,
                    claim: &claim,
                }
                .keys(&q)
                .len(),
            ),
            (
                move_to_finished::MoveToFinished::script(),
                move_to_finished::MoveToFinished {
                    now_ms: 1,
                    job_id: "1",
                    outcome: &done,
                    keep: KeepJobs::ALL,
                    attempts: 1,
                    fetch_next: false,
                    attempts_made: 0,
                    metrics_points: None,
                    dedup_id: None,
                    has_parent: false,
                    claim: &claim,
                }
                .keys(&q)
                .len(),
            ),
            (
                move_to_waiting_children::MoveToWaitingChildren::script(),
                move_to_waiting_children::MoveToWaitingChildren {
                    now_ms: 1,
                    job_id: "1",
                    token: "t",
                    child_key: None,
                }
                .keys(&q)
                .len(),
            ),
            (
                retry_job::RetryJob::script(),
                retry_job::RetryJob {
                    now_ms: 1,
                    job_id: "1",
                    token: "t",
                    lifo: false,
                    reason: "r",
                    stacktrace: "[]",
                    compat: Compat::Auto,
                }
                .keys(&q)
                .len(),
            ),
            (
                update_data::UpdateData::script(),
                update_data::UpdateData {
                    job_id: "1",
                    data_json: "{}",
                }
                .keys(&q)
                .len(),
            ),
            (
                move_to_finished_batch::MoveToFinishedBatch::script(),
                move_to_finished_batch::MoveToFinishedBatch { jobs: &[] }
                    .keys(&q)
                    .len(),
            ),
            (
                update_job_scheduler::UpdateJobScheduler::script(),
                update_job_scheduler::UpdateJobScheduler {
                    now_ms: 1,
                    scheduler_id: "s",
                    producer_id: "1",
                    pattern_next_ms: None,
                    count: 1,
                    compat: Compat::Auto,
                }
                .keys(&q)
                .len(),
            ),
            (
                update_progress::UpdateProgress::script(),
                update_progress::UpdateProgress {
                    job_id: "1",
                    progress_json: "1",
                }
                .keys(&q)
                .len(),
            ),
        ];
        for (script, keys) in &built {
            assert_eq!(*keys, script.num_keys(), "{}: KEYS built", script.name());
        }
        // Each embedded script has exactly one wrapper here.
        let mut named: Vec<&str> = built.iter().map(|(s, _)| s.name()).collect();
        named.sort_unstable();
        named.dedup();
        assert_eq!(named.len(), COMMANDS.len());
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn decodes_every_claim_shape() {
        let job = Value::Array(vec![
            Value::Array(vec![bulk("fetch-job"), bulk("{}"), Value::Nil]),
            bulk("12"),
            Value::Int(0),
            Value::Int(0),
        ]);
        match decode_claim("t", job).unwrap() {
            Claim::Job(j) => assert_eq!((j.id.as_str(), j.name.as_str()), ("12", "fetch-job")),
            other => panic!("{other:?}"),
        }
        let limited = Value::Array(vec![
            Value::Int(0),
            Value::Int(0),
            Value::Int(250),
            Value::Int(0),
        ]);
        assert!(matches!(
            decode_claim("t", limited).unwrap(),
            Claim::RateLimited(250)
        ));
        let delayed = Value::Array(vec![
            Value::Int(0),
            Value::Int(0),
            Value::Int(0),
            Value::Int(99),
        ]);
        assert!(matches!(
            decode_claim("t", delayed).unwrap(),
            Claim::NextDelayedAt(99)
        ));
        assert!(matches!(
            decode_claim("t", Value::Int(0)).unwrap(),
            Claim::Empty
        ));
        assert!(decode_claim("t", Value::Int(-2)).is_err());
        // Bytes that are not UTF-8 are read lossily, as Node reads them; a job needs its id.
        let odd = Value::Array(vec![
            Value::Array(vec![Value::BulkString(vec![b'a', 0xff])]),
            Value::Int(7),
            Value::Int(0),
            Value::Int(0),
        ]);
        match decode_claim("t", odd).unwrap() {
            Claim::Job(j) => assert_eq!((j.id.as_str(), j.name.as_str()), ("7", "a\u{fffd}")),
            other => panic!("{other:?}"),
        }
        let no_id = Value::Array(vec![Value::Array(vec![bulk("fetch-job")]), Value::Nil]);
        assert!(decode_claim("t", no_id).is_err());
    }
}
