//! `lua/retryJob-11.lua`: active → wait (or prioritized) for an immediate retry.

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};
use crate::bullmq::options::Compat;

/// Puts a job this worker holds back for an immediate retry (a failed attempt without
/// backoff), counting the attempt.
#[derive(Debug, Clone, Copy)]
pub struct RetryJob<'a> {
    /// The retry's time (ms since the epoch), stored with the `waiting` event.
    pub now_ms: u64,
    /// The job retried.
    pub job_id: &'a str,
    /// The token it was claimed with: the script refuses if the lock is someone else's.
    pub token: &'a str,
    /// The job's `lifo`: push it to the front of wait instead of the back.
    pub lifo: bool,
    /// The failed attempt's raw message (`failedReason`).
    pub reason: &'a str,
    /// All stack traces, a JSON array of strings (`stacktrace`).
    pub stacktrace: &'a str,
    /// Whether a paused queue takes the job in `paused` (5) or `wait` (6).
    pub compat: Compat,
}

impl RetryJob<'_> {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.retry_job
    }

    /// KEYS in the header's order.
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        vec![
            queue.active.clone(),
            queue.wait.clone(),
            queue.paused.clone(),
            queue.job(self.job_id),
            queue.meta.clone(),
            queue.events.clone(),
            queue.delayed.clone(),
            queue.prioritized.clone(),
            queue.pc.clone(),
            queue.marker.clone(),
            queue.stalled.clone(),
        ]
    }

    /// ARGV in the header's order.
    pub fn args(&self, queue: &QueueKeys) -> Vec<Vec<u8>> {
        vec![
            arg(&queue.base),
            arg(self.now_ms),
            arg(if self.lifo { "RPUSH" } else { "LPUSH" }),
            arg(self.job_id),
            arg(self.token),
            arg(self.reason),
            arg(self.stacktrace),
            arg(self.compat.as_arg()),
        ]
    }

    /// Puts the job back.
    ///
    /// # Errors
    ///
    /// [`Error::Script`] when the job is gone or the lock was lost; Redis errors.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        queue: &QueueKeys,
    ) -> Result<(), Error> {
        let script = Self::script();
        let code: i64 = script
            .run(con, &self.keys(queue), &self.args(queue))
            .await?;
        Error::check(script.name(), self.job_id, code).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifo_pushes_to_the_front() {
        let req = RetryJob {
            now_ms: 7,
            job_id: "3",
            token: "w:1",
            lifo: false,
            reason: "boom",
            stacktrace: "[]",
            compat: Compat::V6,
        };
        let queue = QueueKeys::new("bull", "q");
        assert_eq!(
            req.args(&queue),
            [
                arg("bull:q:"),
                arg(7),
                arg("LPUSH"),
                arg("3"),
                arg("w:1"),
                arg("boom"),
                arg("[]"),
                arg("6")
            ]
        );
        let lifo = RetryJob { lifo: true, ..req };
        assert_eq!(lifo.args(&queue)[2], arg("RPUSH"));
        let keys = req.keys(&queue);
        assert_eq!(
            (keys[0].as_str(), keys[3].as_str(), keys[10].as_str()),
            ("bull:q:active", "bull:q:3", "bull:q:stalled")
        );
    }
}
