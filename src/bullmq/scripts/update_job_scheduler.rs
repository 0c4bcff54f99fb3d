//! `lua/updateJobScheduler-12.lua`: adds a scheduler's next iteration when one is claimed.

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};
use crate::bullmq::options::Compat;

/// Schedules the iteration after `producer_id`, the iteration just claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateJobScheduler<'a> {
    /// The request's time (ms since the epoch): an `every` schedule's next run is computed
    /// from it and the scheduler's latest run.
    pub now_ms: u64,
    /// The scheduler (the claimed job's `rjk`).
    pub scheduler_id: &'a str,
    /// The claimed iteration's job id.
    pub producer_id: &'a str,
    /// The next run of a `pattern` schedule (ms); `None` for `every`, which the script
    /// computes from the scheduler's latest run.
    pub pattern_next_ms: Option<u64>,
    /// The next iteration's number (`repeat.count`).
    pub count: u64,
    /// Whether a paused queue takes the next iteration in `paused` (5) or `wait` (6).
    pub compat: Compat,
}

impl UpdateJobScheduler<'_> {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.update_job_scheduler
    }

    /// KEYS in the header's order; the last is the claimed iteration's hash.
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        vec![
            queue.repeat.clone(),
            queue.delayed.clone(),
            queue.wait.clone(),
            queue.paused.clone(),
            queue.meta.clone(),
            queue.prioritized.clone(),
            queue.marker.clone(),
            queue.id.clone(),
            queue.events.clone(),
            queue.pc.clone(),
            queue.active.clone(),
            queue.job(self.producer_id),
        ]
    }

    /// ARGV in the header's order.
    pub fn args(&self) -> Vec<Vec<u8>> {
        vec![
            self.pattern_next_ms.map(arg).unwrap_or_default(),
            arg(self.scheduler_id),
            arg(self.now_ms),
            arg(self.producer_id),
            arg(self.count),
            arg(self.compat.as_arg()),
        ]
    }

    /// Schedules the next iteration.
    ///
    /// # Returns
    ///
    /// The new job's id, or `None` when nothing was scheduled (the scheduler is gone, the
    /// claimed job is not its latest iteration, or the next job exists already).
    ///
    /// # Errors
    ///
    /// Redis errors.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        queue: &QueueKeys,
    ) -> Result<Option<String>, Error> {
        let id: String = Self::script()
            .run(con, &self.keys(queue), &self.args())
            .await?;
        Ok(Some(id).filter(|id| !id.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schedules_leave_the_next_time_to_the_script() {
        let next = UpdateJobScheduler {
            now_ms: 1500,
            scheduler_id: "s",
            producer_id: "repeat:s:1000",
            pattern_next_ms: None,
            count: 2,
            compat: Compat::Auto,
        };
        let a = next.args();
        assert_eq!(a[0], b"");
        assert_eq!(
            a[1..],
            [
                arg("s"),
                arg(1500),
                arg("repeat:s:1000"),
                arg(2),
                arg("auto")
            ]
        );
        let cron = UpdateJobScheduler {
            pattern_next_ms: Some(2000),
            compat: Compat::V6,
            ..next
        };
        assert_eq!(cron.args()[0], b"2000");
    }

    #[test]
    fn keys_end_with_the_claimed_iteration() {
        let next = UpdateJobScheduler {
            now_ms: 1500,
            scheduler_id: "s",
            producer_id: "repeat:s:1000",
            pattern_next_ms: None,
            count: 2,
            compat: Compat::Auto,
        };
        let k = next.keys(&QueueKeys::new("bull", "q"));
        assert_eq!(
            (k[0].as_str(), k[7].as_str(), k[11].as_str()),
            ("bull:q:repeat", "bull:q:id", "bull:q:repeat:s:1000")
        );
    }
}
