//! `lua/moveStalledJobsToWait-9.lua`: active jobs without a lock → front of wait.

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};
use crate::bullmq::options::Compat;

/// One stalled check (a no-op when another worker ran one within `interval_ms`).
#[derive(Debug, Clone, Copy)]
pub struct MoveStalledJobsToWait {
    /// The check's time (ms since the epoch), stored with each `stalled` event.
    pub now_ms: u64,
    /// Stalls a job may survive; one more fails it (`job stalled more than allowable limit`).
    pub max_stalled_count: u32,
    /// The checker's period (ms): the throttle key lives this long, so one worker of the fleet
    /// checks per period. At least 1 is sent (a 0 TTL is an error in Redis).
    pub interval_ms: u64,
    /// Whether a paused queue takes recovered jobs in `paused` (5) or `wait` (6).
    pub compat: Compat,
}

impl MoveStalledJobsToWait {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.move_stalled_jobs_to_wait
    }

    /// KEYS in the header's order.
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        vec![
            queue.stalled.clone(),
            queue.wait.clone(),
            queue.active.clone(),
            queue.stalled_check.clone(),
            queue.meta.clone(),
            queue.paused.clone(),
            queue.marker.clone(),
            queue.events.clone(),
            queue.repeat.clone(),
        ]
    }

    /// ARGV in the header's order.
    pub fn args(&self, queue: &QueueKeys) -> Vec<Vec<u8>> {
        vec![
            arg(self.max_stalled_count),
            arg(&queue.base),
            arg(self.now_ms),
            arg(self.interval_ms.max(1)),
            arg(self.compat.as_arg()),
        ]
    }

    /// Runs the check.
    ///
    /// # Returns
    ///
    /// The ids moved back to wait.
    ///
    /// # Errors
    ///
    /// Redis errors.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        queue: &QueueKeys,
    ) -> Result<Vec<String>, Error> {
        Self::script()
            .run(con, &self.keys(queue), &self.args(queue))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_never_send_a_zero_interval() {
        let req = MoveStalledJobsToWait {
            now_ms: 5,
            max_stalled_count: 1,
            interval_ms: 0,
            compat: Compat::V6,
        };
        let queue = QueueKeys::new("bull", "q");
        assert_eq!(
            req.args(&queue),
            [arg(1), arg("bull:q:"), arg(5), arg(1), arg("6")]
        );
        let keys = req.keys(&queue);
        assert_eq!(
            (keys[0].as_str(), keys[3].as_str(), keys[8].as_str()),
            ("bull:q:stalled", "bull:q:stalled-check", "bull:q:repeat")
        );
    }
}
