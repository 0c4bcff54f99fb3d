//! `lua/moveToFinished-13.lua`: active → completed or failed (or deleted), with fetch-next.

use redis::Value;
use redis::aio::ConnectionLike;

use super::{Claim, ClaimArgs, arg, decode_claim};
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::options::KeepJobs;
use crate::bullmq::script::SCRIPTS;

/// How the attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Completed with this return value (JSON text).
    Completed {
        /// JSON text.
        returnvalue: String,
    },
    /// Failed for good.
    Failed {
        /// The raw message (`failedReason`).
        reason: String,
        /// All stack traces, JSON-encoded (`stacktrace`).
        stacktrace: String,
    },
}

/// One finish request.
#[derive(Debug)]
pub struct Finish<'a> {
    /// The job.
    pub job_id: &'a str,
    /// How it ended.
    pub outcome: &'a Outcome,
    /// Retention for its finished set.
    pub keep: KeepJobs,
    /// The job's `opts.attempts`.
    pub attempts: u32,
    /// Claim the next job in the same call.
    pub fetch_next: bool,
    /// Attempts ended before this one (read at claim).
    pub attempts_made: u32,
    /// Count the finish in the queue's metrics, keeping this many one-minute points (the
    /// worker's `metrics.maxDataPoints`); `None` collects nothing.
    pub metrics_points: Option<u64>,
}

/// Builds ARGV (pure, for tests).
pub(crate) fn args(
    keys: &QueueKeys,
    now_ms: u64,
    f: &Finish<'_>,
    claim: &ClaimArgs,
) -> Vec<Vec<u8>> {
    let (field, value, target, stack) = match f.outcome {
        Outcome::Completed { returnvalue } => {
            ("returnvalue", returnvalue.as_str(), "completed", "")
        }
        Outcome::Failed { reason, stacktrace } => (
            "failedReason",
            reason.as_str(),
            "failed",
            stacktrace.as_str(),
        ),
    };
    let [lmax, ldur] = claim.limiter_args();
    vec![
        arg(f.job_id),
        arg(now_ms),
        arg(field),
        arg(value),
        arg(target),
        arg(if f.fetch_next { "1" } else { "0" }),
        arg(&keys.base),
        arg(&claim.token),
        arg(claim.lock_ms),
        arg(claim.worker_name.as_deref().unwrap_or("")),
        arg(f.keep.count),
        f.keep.age.map(arg).unwrap_or_default(),
        f.keep.limit.map(arg).unwrap_or_default(),
        arg(f.attempts),
        arg(stack),
        lmax,
        ldur,
        arg(f.attempts_made),
        arg(claim.compat.as_arg()),
        f.metrics_points.map(arg).unwrap_or_default(),
    ]
}

/// Finishes the job; returns the next claimed job when `fetch_next` found one.
///
/// # Errors
///
/// [`Error::Script`] when the job is gone or the lock was lost; Redis errors.
pub async fn call<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    now_ms: u64,
    finish: &Finish<'_>,
    claim: &ClaimArgs,
) -> Result<Claim, Error> {
    let job_key = keys.job(finish.job_id);
    let target = match finish.outcome {
        Outcome::Completed { .. } => &keys.completed,
        Outcome::Failed { .. } => &keys.failed,
    };
    let k = [
        keys.wait.as_str(),
        &keys.active,
        &keys.prioritized,
        &keys.events,
        &keys.stalled,
        &keys.limiter,
        &keys.delayed,
        &keys.paused,
        &keys.meta,
        &keys.pc,
        &keys.marker,
        target,
        &job_key,
    ];
    let script = &SCRIPTS.move_to_finished;
    let reply: Value = script
        .run(con, &k, &args(keys, now_ms, finish, claim))
        .await?;
    if let Value::Int(code) = reply {
        Error::check(script.name(), finish.job_id, code)?;
        return Ok(Claim::Empty);
    }
    decode_claim(script.name(), reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_carries_retention_and_outcome() {
        let keys = QueueKeys::new("bull", "q");
        let out = Outcome::Failed {
            reason: "boom".into(),
            stacktrace: "[\"x\"]".into(),
        };
        let f = Finish {
            job_id: "3",
            outcome: &out,
            keep: KeepJobs {
                count: 5,
                age: Some(60),
                limit: None,
            },
            attempts: 3,
            fetch_next: true,
            attempts_made: 2,
            metrics_points: Some(60),
        };
        let claim = ClaimArgs {
            token: "t:1".into(),
            lock_ms: 30000,
            worker_name: None,
            limiter: None,
            compat: crate::bullmq::options::Compat::V6,
        };
        let a: Vec<String> = args(&keys, 10, &f, &claim)
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        assert_eq!(a.len(), 20);
        assert_eq!(&a[..6], ["3", "10", "failedReason", "boom", "failed", "1"]);
        assert_eq!(
            (a[10].as_str(), a[11].as_str(), a[12].as_str()),
            ("5", "60", "")
        );
        assert_eq!((a[13].as_str(), a[14].as_str()), ("3", "[\"x\"]"));
        assert_eq!((a[17].as_str(), a[18].as_str()), ("2", "6"));
        assert_eq!(a[19], "60");
    }
}
