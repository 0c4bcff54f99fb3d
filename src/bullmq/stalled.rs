//! The stalled checker: at start and every `stalledInterval`, jobs whose worker vanished go
//! back to wait (see `lua/moveStalledJobsToWait-9.lua`). The script's throttle key makes one
//! worker of the fleet do the work per interval.

use std::sync::Arc;
use std::time::Duration;

use crate::redis_conn::RedisConn;
use tokio_util::sync::CancellationToken;

use super::clock::now_ms;
use super::keys::QueueKeys;
use super::options::Compat;
use super::scripts::move_stalled_jobs_to_wait::MoveStalledJobsToWait;

/// Runs stalled checks until `stop` is cancelled.
pub async fn check_stalled(
    mut con: RedisConn,
    keys: Arc<QueueKeys>,
    interval: Duration,
    max_stalled_count: u32,
    compat: Compat,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let check = MoveStalledJobsToWait {
            now_ms: now_ms(),
            max_stalled_count,
            interval_ms: interval.as_millis() as u64,
            compat,
        }
        .call(&mut con, &keys)
        .await;
        match check {
            Ok(ids) => {
                for id in ids {
                    tracing::warn!(job_id = %id, "stalled job moved back to wait");
                }
            }
            Err(e) => {
                tracing::warn!(error.message = %e, "stalled check failed; retrying next interval")
            }
        }
    }
}
