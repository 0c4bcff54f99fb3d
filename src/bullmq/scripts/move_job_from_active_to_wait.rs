//! `lua/moveJobFromActiveToWait-10.lua`: active → front of wait, no attempt used (shutdown
//! hand-back, and a processor that rate-limits the queue).

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};
use crate::bullmq::options::Compat;

/// Hands a job this worker holds back, so another worker takes it next.
#[derive(Debug, Clone, Copy)]
pub struct MoveJobFromActiveToWait<'a> {
    /// The job handed back.
    pub job_id: &'a str,
    /// The token it was claimed with: the script refuses if the lock is someone else's.
    pub token: &'a str,
    /// Whether a paused queue takes the job in `paused` (5) or `wait` (6).
    pub compat: Compat,
}

impl MoveJobFromActiveToWait<'_> {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.move_job_from_active_to_wait
    }

    /// KEYS in the header's order.
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        vec![
            queue.active.clone(),
            queue.wait.clone(),
            queue.stalled.clone(),
            queue.paused.clone(),
            queue.meta.clone(),
            queue.prioritized.clone(),
            queue.marker.clone(),
            queue.events.clone(),
            queue.job(self.job_id),
            queue.limiter.clone(),
        ]
    }

    /// ARGV in the header's order.
    pub fn args(&self) -> Vec<Vec<u8>> {
        vec![arg(self.job_id), arg(self.token), arg(self.compat.as_arg())]
    }

    /// Hands the job back.
    ///
    /// # Returns
    ///
    /// How long the queue's rate limiter still holds, in ms (0 when it is not set).
    ///
    /// # Errors
    ///
    /// [`Error::Script`] when the job is gone or the lock was lost; Redis errors.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        queue: &QueueKeys,
    ) -> Result<u64, Error> {
        let script = Self::script();
        let code: i64 = script.run(con, &self.keys(queue), &self.args()).await?;
        Error::check(script.name(), self.job_id, code).map(|ms| ms as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_put_the_job_ninth_and_args_carry_the_token() {
        let req = MoveJobFromActiveToWait {
            job_id: "4",
            token: "w:1",
            compat: Compat::Auto,
        };
        let keys = req.keys(&QueueKeys::new("bull", "q"));
        assert_eq!(
            (keys[0].as_str(), keys[8].as_str(), keys[9].as_str()),
            ("bull:q:active", "bull:q:4", "bull:q:limiter")
        );
        assert_eq!(req.args(), [arg("4"), arg("w:1"), arg("auto")]);
    }
}
