//! `lua/moveToFinished-13.lua`: active → completed or failed (or deleted), with fetch-next.

use redis::Value;
use redis::aio::ConnectionLike;

use super::{Claim, ClaimArgs, arg, arg_ms, decode_end_and_claim};
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};
use crate::bullmq::options::KeepJobs;

/// How the attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Completed with this return value (JSON text).
    Completed {
        /// The processor's return value as JSON text, stored as `returnvalue` for
        /// `job.returnvalue` and the `completed` event.
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

/// Ends a job this worker holds: completed or failed for good.
#[derive(Debug, Clone, Copy)]
pub struct MoveToFinished<'a> {
    /// The finish's time (ms since the epoch): the job's `finishedOn` and its score in the
    /// finished set, which age-based retention reads.
    pub now_ms: u64,
    /// The job finished.
    pub job_id: &'a str,
    /// How it ended: picks the finished set, the field written and the event.
    pub outcome: &'a Outcome,
    /// Retention for its finished set.
    pub keep: KeepJobs,
    /// The job's `opts.attempts`, stored back so Node's `job.attemptsMade` logic agrees.
    pub attempts: u32,
    /// Claim the next job in the same call.
    pub fetch_next: bool,
    /// Attempts ended before this one (read at claim).
    pub attempts_made: u32,
    /// Count the finish in the queue's metrics, keeping this many one-minute points (the
    /// worker's `metrics.maxDataPoints`); `None` collects nothing.
    pub metrics_points: Option<u64>,
    /// The job's deduplication id as the claim read it ([`Job::dedup_id`]).
    ///
    /// [`Job::dedup_id`]: crate::bullmq::job::Job::dedup_id
    pub dedup_id: Option<&'a str>,
    /// The claim read a parent ([`Job::has_parent`]): the finish tells the parent.
    ///
    /// [`Job::has_parent`]: crate::bullmq::job::Job::has_parent
    pub has_parent: bool,
    /// The holder's claim: its token proves the lock; the rest applies to the next job.
    pub claim: &'a ClaimArgs,
}

/// How many ARGV are the job's own (after the 7 every finish of a worker shares): see
/// `lua/includes/readFinishJob.lua`.
pub(super) const JOB_ARGS: usize = 15;

/// KEYS 1-11 of `moveToFinished` and `moveToFinishedBatch`: the queue's keys a finish and
/// the claim after it touch, in the scripts' order.
pub(super) fn queue_keys(queue: &QueueKeys) -> Vec<String> {
    vec![
        queue.wait.clone(),
        queue.active.clone(),
        queue.prioritized.clone(),
        queue.events.clone(),
        queue.stalled.clone(),
        queue.limiter.clone(),
        queue.delayed.clone(),
        queue.paused.clone(),
        queue.meta.clone(),
        queue.pc.clone(),
        queue.marker.clone(),
    ]
}

impl MoveToFinished<'_> {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.move_to_finished
    }

    /// KEYS in the header's order; the twelfth is the finished set the outcome picks.
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        let target = match self.outcome {
            Outcome::Completed { .. } => &queue.completed,
            Outcome::Failed { .. } => &queue.failed,
        };
        let mut keys = queue_keys(queue);
        keys.extend([target.clone(), queue.job(self.job_id)]);
        keys
    }

    /// ARGV in the header's order: the worker's settings, then the job's own.
    pub fn args(&self, queue: &QueueKeys) -> Vec<Vec<u8>> {
        let mut args = self.shared_args(queue);
        args.extend(self.job_args());
        args
    }

    /// ARGV 1-7: what every finish of one worker has in common (`moveToFinishedBatch` sends
    /// them once per batch).
    pub(super) fn shared_args(&self, queue: &QueueKeys) -> Vec<Vec<u8>> {
        let claim = self.claim;
        let [lmax, ldur] = claim.limiter_args();
        vec![
            arg(&queue.base),
            arg_ms(claim.lock),
            arg(claim.worker_name.as_deref().unwrap_or("")),
            lmax,
            ldur,
            arg(claim.compat.as_arg()),
            self.metrics_points.map(arg).unwrap_or_default(),
        ]
    }

    /// The job's own [`JOB_ARGS`] ARGV (8-22 here; each job's share of a batch).
    pub(super) fn job_args(&self) -> [Vec<u8>; JOB_ARGS] {
        let (field, value, target, stack) = match self.outcome {
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
        [
            arg(self.job_id),
            arg(self.now_ms),
            arg(field),
            arg(value),
            arg(target),
            arg(if self.fetch_next { "1" } else { "0" }),
            arg(&self.claim.token),
            arg(self.keep.count),
            self.keep.age.map(arg).unwrap_or_default(),
            self.keep.limit.map(arg).unwrap_or_default(),
            arg(self.attempts),
            arg(stack),
            arg(self.attempts_made),
            arg(self.dedup_id.unwrap_or("")),
            arg(if self.has_parent { "1" } else { "" }),
        ]
    }

    /// Finishes the job; returns the next claimed job when `fetch_next` found one.
    ///
    /// # Errors
    ///
    /// [`Error::Script`] when the job is gone or the lock was lost; Redis errors.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        queue: &QueueKeys,
    ) -> Result<Claim, Error> {
        let script = Self::script();
        let reply: Value = script
            .run(con, &self.keys(queue), &self.args(queue))
            .await?;
        decode_end_and_claim(script.name(), self.job_id, reply)
    }
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
        let claim = ClaimArgs {
            token: "t:1".into(),
            lock: std::time::Duration::from_secs(30),
            worker_name: None,
            limiter: None,
            compat: crate::bullmq::options::Compat::V6,
        };
        let f = MoveToFinished {
            now_ms: 10,
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
            dedup_id: Some("d"),
            has_parent: true,
            claim: &claim,
        };
        let a: Vec<String> = f
            .args(&keys)
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        assert_eq!(a.len(), 22);
        assert_eq!(
            &a[7..13],
            ["3", "10", "failedReason", "boom", "failed", "1"]
        );
        assert_eq!(
            (a[14].as_str(), a[15].as_str(), a[16].as_str()),
            ("5", "60", "")
        );
        assert_eq!((a[17].as_str(), a[18].as_str()), ("3", "[\"x\"]"));
        assert_eq!((a[19].as_str(), a[5].as_str()), ("2", "6"));
        assert_eq!(
            (a[6].as_str(), a[20].as_str(), a[21].as_str()),
            ("60", "d", "1")
        );
    }

    #[test]
    fn keys_pick_the_finished_set_of_the_outcome() {
        let queue = QueueKeys::new("bull", "q");
        let claim = ClaimArgs {
            token: "t:1".into(),
            lock: std::time::Duration::from_secs(30),
            worker_name: None,
            limiter: None,
            compat: crate::bullmq::options::Compat::Auto,
        };
        let done = Outcome::Completed {
            returnvalue: "1".into(),
        };
        let f = MoveToFinished {
            now_ms: 10,
            job_id: "3",
            outcome: &done,
            keep: KeepJobs::ALL,
            attempts: 1,
            fetch_next: false,
            attempts_made: 0,
            metrics_points: None,
            dedup_id: None,
            has_parent: false,
            claim: &claim,
        };
        let k = f.keys(&queue);
        assert_eq!(
            (k[0].as_str(), k[11].as_str(), k[12].as_str()),
            ("bull:q:wait", "bull:q:completed", "bull:q:3")
        );
        let failed = Outcome::Failed {
            reason: "r".into(),
            stacktrace: "[]".into(),
        };
        let f = MoveToFinished {
            outcome: &failed,
            ..f
        };
        assert_eq!(f.keys(&queue)[11], "bull:q:failed");
        assert_eq!(f.args(&queue)[9], arg("failedReason"));
    }
}
