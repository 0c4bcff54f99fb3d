//! `lua/updateJobScheduler-12.lua`: adds a scheduler's next iteration when one is claimed.

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::options::Compat;
use crate::bullmq::script::SCRIPTS;

/// One request to schedule the iteration after `producer_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextIteration<'a> {
    /// The scheduler (the claimed job's `rjk`).
    pub scheduler_id: &'a str,
    /// The claimed iteration's job id.
    pub producer_id: &'a str,
    /// The next run of a `pattern` schedule (ms); `None` for `every`, which the script
    /// computes from the scheduler's latest run.
    pub pattern_next_ms: Option<u64>,
    /// The next iteration's number (`repeat.count`).
    pub count: u64,
}

/// The script's ARGV for `next` at `now`.
fn args(next: &NextIteration<'_>, now: u64, compat: Compat) -> Vec<Vec<u8>> {
    vec![
        next.pattern_next_ms.map(arg).unwrap_or_default(),
        arg(next.scheduler_id),
        arg(now),
        arg(next.producer_id),
        arg(next.count),
        arg(compat.as_arg()),
    ]
}

/// Schedules the next iteration.
///
/// # Returns
///
/// The new job's id, or `None` when nothing was scheduled (the scheduler is gone, the claimed
/// job is not its latest iteration, or the next job exists already).
///
/// # Errors
///
/// Redis errors.
pub async fn call<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    now: u64,
    next: &NextIteration<'_>,
    compat: Compat,
) -> Result<Option<String>, Error> {
    let producer_key = keys.job(next.producer_id);
    let k = [
        keys.repeat.as_str(),
        &keys.delayed,
        &keys.wait,
        &keys.paused,
        &keys.meta,
        &keys.prioritized,
        &keys.marker,
        &keys.id,
        &keys.events,
        &keys.pc,
        &keys.active,
        &producer_key,
    ];
    let id: String = SCRIPTS
        .update_job_scheduler
        .run(con, &k, &args(next, now, compat))
        .await?;
    Ok(Some(id).filter(|id| !id.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schedules_leave_the_next_time_to_the_script() {
        let next = NextIteration {
            scheduler_id: "s",
            producer_id: "repeat:s:1000",
            pattern_next_ms: None,
            count: 2,
        };
        let a = args(&next, 1500, Compat::Auto);
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
        let cron = NextIteration {
            pattern_next_ms: Some(2000),
            ..next
        };
        assert_eq!(args(&cron, 1500, Compat::V6)[0], b"2000");
    }
}
