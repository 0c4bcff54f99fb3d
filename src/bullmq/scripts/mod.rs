//! One wrapper per Lua script: typed arguments in, typed outcome out.
//!
//! Each module builds the KEYS and ARGV of its script (pure, unit-tested) and decodes the
//! reply. Negative codes become [`Error::Script`](super::Error::Script) in exactly one place,
//! [`Error::check`](super::Error::check).

pub mod add_log;
pub mod add_standard_job;
pub mod extend_locks;
pub mod move_job_from_active_to_wait;
pub mod move_stalled_jobs_to_wait;
pub mod move_to_active;
pub mod move_to_delayed;
pub mod move_to_finished;
pub mod move_to_waiting_children;
pub mod retry_job;
pub mod update_data;
pub mod update_job_scheduler;
pub mod update_progress;

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
    /// Lock time-to-live (ms).
    pub lock_ms: u64,
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
    let int = |v: Option<&Value>| match v {
        Some(Value::Int(n)) => *n,
        _ => 0,
    };
    match items.first() {
        Some(Value::Array(fields)) => {
            let id = match items.get(1) {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                Some(Value::Int(n)) => n.to_string(),
                _ => return Err(bad("job id missing")),
            };
            let fields = fields
                .iter()
                .take(CLAIM_FIELDS)
                .map(|f| match f {
                    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    Value::SimpleString(s) => Some(s.clone()),
                    Value::Int(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect();
            Ok(Claim::Job(Box::new(Job::from_claim(id, fields))))
        }
        _ => {
            let ttl = int(items.get(2));
            let due = int(items.get(3));
            Ok(if ttl > 0 {
                Claim::RateLimited(ttl as u64)
            } else if due > 0 {
                Claim::NextDelayedAt(due as u64)
            } else {
                Claim::Empty
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
