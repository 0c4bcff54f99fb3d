//! The stalled checker: at start and every `stalledInterval`, jobs whose worker vanished go
//! back to wait (see `lua/moveStalledJobsToWait-9.lua`). The script's throttle key makes one
//! worker of the fleet do the work per interval.
//!
//! The schedule (`every`) is apart from the check so its timing can be tested on tokio's
//! paused clock without a Redis.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::redis_conn::RedisConn;
use tokio_util::sync::CancellationToken;

use super::clock::now_ms;
use super::error::Error;
use super::keys::QueueKeys;
use super::options::Compat;
use super::scripts::move_stalled_jobs_to_wait::MoveStalledJobsToWait;

/// Runs stalled checks until `stop` is cancelled: one at once, then one every `interval`
/// (see `every` for what a slow or failed check does to the schedule). Each job moved back
/// to wait is logged; a failed check is logged and tried again at the next interval.
pub async fn check_stalled(
    con: RedisConn,
    keys: Arc<QueueKeys>,
    interval: Duration,
    max_stalled_count: u32,
    compat: Compat,
    stop: CancellationToken,
) {
    every(interval, &stop, || {
        // Clones share the one connection; the check's future owns its handles.
        let mut con = con.clone();
        let keys = keys.clone();
        async move {
            let moved = MoveStalledJobsToWait {
                now_ms: now_ms(),
                max_stalled_count,
                interval_ms: interval.as_millis() as u64,
                compat,
            }
            .call(&mut con, &keys)
            .await?;
            for id in moved {
                tracing::warn!(job_id = %id, "stalled job moved back to wait");
            }
            Ok::<(), Error>(())
        }
    })
    .await
}

/// Calls `check` at once and then every `interval`, until `stop` is cancelled.
///
/// Checks never overlap: the next one waits for the current one to end. A check that
/// outlasts the interval is followed by one more check straight away, and the schedule then
/// restarts from there (tokio's `MissedTickBehavior::Delay`): missed intervals are not caught
/// up in a burst. A failed check is logged and waits for the next interval like any other.
///
/// # Cancel safety
///
/// `stop` ends the wait between two checks at once; a check under way is not interrupted
/// (the script is one atomic step anyway), and no further check starts after it.
async fn every<E, F, Fut>(interval: Duration, stop: &CancellationToken, mut check: F)
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = check().await {
            tracing::warn!(error.message = %e, "stalled check failed; retrying next interval")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::cell::RefCell;
    use tokio::time::Instant;

    const INTERVAL: Duration = Duration::from_secs(10);

    fn secs(s: &[u64]) -> Vec<Duration> {
        s.iter().map(|&s| Duration::from_secs(s)).collect()
    }

    /// Runs [`every`] on the paused clock with a check whose `n`-th call (from 1) lasts
    /// `lasts(n)` seconds and fails when `fails`, and cancels `stop` at `stop_at` seconds.
    /// Returns when each check started and when `every` returned, since the start.
    async fn schedule(
        stop_at: u64,
        lasts: impl Fn(usize) -> u64,
        fails: bool,
    ) -> (Vec<Duration>, Duration) {
        let start = Instant::now();
        let stop = CancellationToken::new();
        let started = RefCell::new(Vec::new());
        let running = RefCell::new(0);
        let run = async {
            every(INTERVAL, &stop, || {
                started.borrow_mut().push(start.elapsed());
                let n = started.borrow().len();
                *running.borrow_mut() += 1;
                assert_eq!(*running.borrow(), 1, "checks overlap");
                let running = &running;
                let lasts = Duration::from_secs(lasts(n));
                async move {
                    tokio::time::sleep(lasts).await;
                    *running.borrow_mut() -= 1;
                    if fails { Err("redis is down") } else { Ok(()) }
                }
            })
            .await;
            start.elapsed()
        };
        let cancel = async {
            tokio::time::sleep_until(start + Duration::from_secs(stop_at)).await;
            stop.cancel();
        };
        let (ended, ()) = tokio::join!(run, cancel);
        (started.into_inner(), ended)
    }

    /// One check at once (recovering what a crash left before this worker started), then one
    /// per interval, to the millisecond.
    #[tokio::test(start_paused = true)]
    async fn checks_run_at_once_and_then_every_interval() {
        let (started, ended) = schedule(35, |_| 0, false).await;
        assert_eq!(started, secs(&[0, 10, 20, 30]));
        assert_eq!(ended, Duration::from_secs(35));
    }

    /// A check that outlasts the interval (a slow Redis) is followed by one check, not by a
    /// burst that catches up the missed intervals; the schedule restarts from there.
    #[tokio::test(start_paused = true)]
    async fn a_slow_check_does_not_stack_up_checks() {
        let (started, _) = schedule(50, |n| if n == 1 { 25 } else { 0 }, false).await;
        assert_eq!(started, secs(&[0, 25, 35, 45]));
    }

    /// A failed check (Redis away) is not retried at once: the next try waits for the next
    /// interval, so an outage costs one call per interval.
    #[tokio::test(start_paused = true)]
    async fn a_failed_check_waits_for_the_next_interval() {
        let (started, ended) = schedule(25, |_| 0, true).await;
        assert_eq!(started, secs(&[0, 10, 20]));
        assert_eq!(ended, Duration::from_secs(25));
    }

    /// Shutdown between two checks ends the checker at that instant; shutdown during a check
    /// lets that check end and starts no other.
    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_checker_promptly() {
        let (started, ended) = schedule(13, |_| 0, false).await;
        assert_eq!(started, secs(&[0, 10]));
        assert_eq!(ended, Duration::from_secs(13));

        let (started, ended) = schedule(12, |n| if n == 2 { 6 } else { 0 }, false).await;
        assert_eq!(started, secs(&[0, 10]));
        assert_eq!(ended, Duration::from_secs(16));
    }
}
