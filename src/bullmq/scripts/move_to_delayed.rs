//! `lua/moveToDelayed-12.lua`: active → delayed for a backoff retry or a processor's
//! deferral, with fetch-next.

use redis::Value;
use redis::aio::ConnectionLike;

use super::{Claim, ClaimArgs, arg, decode_claim};
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::script::SCRIPTS;

/// Moves the job to `delayed` after a failed attempt, due `delay_ms` from now, counting the
/// attempt and recording `reason` and `stacktrace`; returns the next claimed job, if any.
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
    delay_ms: u64,
    reason: &str,
    stacktrace: &str,
    fetch_next: bool,
    claim: &ClaimArgs,
) -> Result<Claim, Error> {
    let failure = Some((reason, stacktrace));
    run(
        con, keys, now_ms, job_id, delay_ms, failure, fetch_next, claim,
    )
    .await
}

/// Moves the job to `delayed` at its processor's request, due `delay_ms` from now, without
/// counting the attempt or touching `failedReason` (BullMQ's `DelayedError`); returns the next
/// claimed job, if any.
///
/// # Errors
///
/// [`Error::Script`] when the job is gone or the lock was lost; Redis errors.
pub async fn defer<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    now_ms: u64,
    job_id: &str,
    delay_ms: u64,
    fetch_next: bool,
    claim: &ClaimArgs,
) -> Result<Claim, Error> {
    run(con, keys, now_ms, job_id, delay_ms, None, fetch_next, claim).await
}

/// `failure` is the failed attempt's reason and stack trace; `None` skips the attempt.
#[allow(clippy::too_many_arguments)]
async fn run<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    now_ms: u64,
    job_id: &str,
    delay_ms: u64,
    failure: Option<(&str, &str)>,
    fetch_next: bool,
    claim: &ClaimArgs,
) -> Result<Claim, Error> {
    let (reason, stacktrace) = failure.unwrap_or(("", ""));
    let job_key = keys.job(job_id);
    let k = [
        keys.marker.as_str(),
        &keys.active,
        &keys.prioritized,
        &keys.delayed,
        &job_key,
        &keys.events,
        &keys.meta,
        &keys.stalled,
        &keys.wait,
        &keys.limiter,
        &keys.paused,
        &keys.pc,
    ];
    let [lmax, ldur] = claim.limiter_args();
    let args = [
        arg(&keys.base),
        arg(now_ms),
        arg(job_id),
        arg(&claim.token),
        arg(delay_ms),
        arg(reason),
        arg(stacktrace),
        arg(if fetch_next { "1" } else { "0" }),
        arg(claim.lock_ms),
        arg(claim.worker_name.as_deref().unwrap_or("")),
        lmax,
        ldur,
        arg(if failure.is_none() { "1" } else { "0" }),
        arg(claim.compat.as_arg()),
    ];
    let script = &SCRIPTS.move_to_delayed;
    let reply: Value = script.run(con, &k, &args).await?;
    if let Value::Int(code) = reply {
        Error::check(script.name(), job_id, code)?;
        return Ok(Claim::Empty);
    }
    decode_claim(script.name(), reply)
}
