//! `lua/retryJob-11.lua`: active → wait (or prioritized) for an immediate retry.

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::options::Compat;
use crate::bullmq::script::SCRIPTS;

/// Puts the job back for an immediate retry (`lifo` pushes it to the front).
///
/// # Errors
///
/// [`Error::Script`] when the job is gone or the lock was lost; Redis errors.
#[allow(clippy::too_many_arguments)]
pub async fn call<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    now_ms: u64,
    job_id: &str,
    token: &str,
    lifo: bool,
    reason: &str,
    stacktrace: &str,
    compat: Compat,
) -> Result<(), Error> {
    let job_key = keys.job(job_id);
    let k = [
        keys.active.as_str(),
        &keys.wait,
        &keys.paused,
        &job_key,
        &keys.meta,
        &keys.events,
        &keys.delayed,
        &keys.prioritized,
        &keys.pc,
        &keys.marker,
        &keys.stalled,
    ];
    let args = [
        arg(&keys.base),
        arg(now_ms),
        arg(if lifo { "RPUSH" } else { "LPUSH" }),
        arg(job_id),
        arg(token),
        arg(reason),
        arg(stacktrace),
        arg(compat.as_arg()),
    ];
    let script = &SCRIPTS.retry_job;
    let code: i64 = script.run(con, &k, &args).await?;
    Error::check(script.name(), job_id, code).map(drop)
}
