//! `lua/moveJobFromActiveToWait-10.lua`: active → front of wait, no attempt used.

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::options::Compat;
use crate::bullmq::script::SCRIPTS;

/// Hands the job back so another worker takes it next.
///
/// # Returns
///
/// How long the queue's rate limiter still holds, in ms (0 when it is not set).
///
/// # Errors
///
/// [`Error::Script`] when the job is gone or the lock was lost; Redis errors.
pub async fn call<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    job_id: &str,
    token: &str,
    compat: Compat,
) -> Result<u64, Error> {
    let job_key = keys.job(job_id);
    let k = [
        keys.active.as_str(),
        &keys.wait,
        &keys.stalled,
        &keys.paused,
        &keys.meta,
        &keys.prioritized,
        &keys.marker,
        &keys.events,
        &job_key,
        &keys.limiter,
    ];
    let script = &SCRIPTS.move_job_from_active_to_wait;
    let code: i64 = script
        .run(con, &k, &[arg(job_id), arg(token), arg(compat.as_arg())])
        .await?;
    Error::check(script.name(), job_id, code).map(|ms| ms as u64)
}
