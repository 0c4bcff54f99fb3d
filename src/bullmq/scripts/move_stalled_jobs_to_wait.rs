//! `lua/moveStalledJobsToWait-9.lua`: active jobs without a lock → front of wait.

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::options::Compat;
use crate::bullmq::script::SCRIPTS;

/// Runs one stalled check (a no-op when another worker ran one within `interval_ms`).
///
/// # Returns
///
/// The ids moved back to wait.
///
/// # Errors
///
/// Redis errors.
pub async fn call<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    now_ms: u64,
    max_stalled_count: u32,
    interval_ms: u64,
    compat: Compat,
) -> Result<Vec<String>, Error> {
    let k = [
        keys.stalled.as_str(),
        &keys.wait,
        &keys.active,
        &keys.stalled_check,
        &keys.meta,
        &keys.paused,
        &keys.marker,
        &keys.events,
        &keys.repeat,
    ];
    let args = [
        arg(max_stalled_count),
        arg(&keys.base),
        arg(now_ms),
        arg(interval_ms.max(1)),
        arg(compat.as_arg()),
    ];
    SCRIPTS.move_stalled_jobs_to_wait.run(con, &k, &args).await
}
