//! `lua/moveToFinishedBatch-13.lua`: several jobs active → completed or failed in one call,
//! each with its own fetch-next.

use redis::Value;
use redis::aio::ConnectionLike;

use super::move_to_finished::{JOB_ARGS, MoveToFinished, queue_keys};
use super::{Claim, decode_end_and_claim};
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};

/// Ends `jobs`, in order, each exactly as its own [`MoveToFinished`] would.
///
/// The jobs must come from one worker: the lock duration, worker name, limiter, compat and
/// metrics setting are sent once, from the first job's request; only the token, the outcome
/// and the job's own fields differ from job to job.
#[derive(Debug, Clone, Copy)]
pub struct MoveToFinishedBatch<'a> {
    /// The finishes, in the order Redis runs them.
    pub jobs: &'a [MoveToFinished<'a>],
}

impl MoveToFinishedBatch<'_> {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.move_to_finished_batch
    }

    /// KEYS in the header's order: the queue's keys, then both finished sets (each job picks
    /// its own by its outcome).
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        let mut keys = queue_keys(queue);
        keys.extend([queue.completed.clone(), queue.failed.clone()]);
        keys
    }

    /// ARGV in the header's order: the shared settings, then 15 per job. Empty when there is
    /// no job (nothing to send).
    pub fn args(&self, queue: &QueueKeys) -> Vec<Vec<u8>> {
        let Some(first) = self.jobs.first() else {
            return Vec::new();
        };
        let mut args = first.shared_args(queue);
        args.reserve(JOB_ARGS * self.jobs.len());
        for job in self.jobs {
            debug_assert_eq!(job.claim.lock, first.claim.lock, "one worker's batch");
            args.extend(job.job_args());
        }
        args
    }

    /// Finishes the jobs; one result per job, in order, as [`MoveToFinished::call`] would
    /// give it (a refused job's [`Error::Script`] does not stop the others).
    ///
    /// # Errors
    ///
    /// Redis errors, or a reply of the wrong shape: then no job's result is known, and the
    /// caller treats each job as if its own call had failed so.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        queue: &QueueKeys,
    ) -> Result<Vec<Result<Claim, Error>>, Error> {
        if self.jobs.is_empty() {
            return Ok(Vec::new());
        }
        let script = Self::script();
        let reply: Value = script
            .run(con, &self.keys(queue), &self.args(queue))
            .await?;
        let items = match reply {
            Value::Array(items) if items.len() == self.jobs.len() => items,
            _ => {
                return Err(Error::Reply {
                    script: script.name(),
                    reason: format!("expected an array of {} results", self.jobs.len()),
                });
            }
        };
        Ok(items
            .into_iter()
            .zip(self.jobs)
            .map(|(item, job)| decode_end_and_claim(script.name(), job.job_id, item))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bullmq::options::{Compat, KeepJobs};
    use crate::bullmq::scripts::ClaimArgs;
    use crate::bullmq::scripts::move_to_finished::Outcome;

    fn claim(token: &str) -> ClaimArgs {
        ClaimArgs {
            token: token.into(),
            lock: std::time::Duration::from_secs(30),
            worker_name: Some("w".into()),
            limiter: Some((10, 1000)),
            compat: Compat::V5,
        }
    }

    #[test]
    fn argv_sends_the_shared_settings_once_then_each_job() {
        let queue = QueueKeys::new("bull", "q");
        let (c1, c2) = (claim("t:1"), claim("t:2"));
        let done = Outcome::Completed {
            returnvalue: "7".into(),
        };
        let failed = Outcome::Failed {
            reason: "boom".into(),
            stacktrace: "[\"x\"]".into(),
        };
        let first = MoveToFinished {
            now_ms: 10,
            job_id: "1",
            outcome: &done,
            keep: KeepJobs::ALL,
            attempts: 3,
            fetch_next: true,
            attempts_made: 0,
            metrics_points: Some(60),
            dedup_id: Some("d"),
            has_parent: false,
            claim: &c1,
        };
        let second = MoveToFinished {
            now_ms: 11,
            job_id: "2",
            outcome: &failed,
            keep: KeepJobs {
                count: 5,
                age: Some(60),
                limit: None,
            },
            attempts: 2,
            fetch_next: false,
            attempts_made: 1,
            dedup_id: None,
            has_parent: true,
            claim: &c2,
            ..first
        };
        let jobs = [first, second];
        let a: Vec<String> = MoveToFinishedBatch { jobs: &jobs }
            .args(&queue)
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        assert_eq!(a.len(), 7 + 2 * JOB_ARGS);
        assert_eq!(a[..7], ["bull:q:", "30000", "w", "10", "1000", "5", "60"]);
        assert_eq!(
            a[7..22],
            [
                "1",
                "10",
                "returnvalue",
                "7",
                "completed",
                "1",
                "t:1",
                "-1",
                "",
                "",
                "3",
                "",
                "0",
                "d",
                ""
            ]
        );
        assert_eq!(
            a[22..],
            [
                "2",
                "11",
                "failedReason",
                "boom",
                "failed",
                "0",
                "t:2",
                "5",
                "60",
                "",
                "2",
                "[\"x\"]",
                "1",
                "",
                "1"
            ]
        );
        assert!(MoveToFinishedBatch { jobs: &[] }.args(&queue).is_empty());
    }

    #[test]
    fn keys_hold_both_finished_sets() {
        let k = MoveToFinishedBatch { jobs: &[] }.keys(&QueueKeys::new("bull", "q"));
        assert_eq!(
            (k[0].as_str(), k[11].as_str(), k[12].as_str()),
            ("bull:q:wait", "bull:q:completed", "bull:q:failed")
        );
    }
}
