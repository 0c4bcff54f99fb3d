//! `lua/moveToActive-10.lua`: wait/prioritized → active, locked with the worker's token.

use redis::Value;
use redis::aio::ConnectionLike;

use super::{Claim, ClaimArgs, arg, decode_claim};
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::script::SCRIPTS;

/// Claims the next job.
///
/// # Errors
///
/// Redis errors and malformed replies.
pub async fn call<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    now_ms: u64,
    claim: &ClaimArgs,
) -> Result<Claim, Error> {
    let k = [
        keys.wait.as_str(),
        &keys.active,
        &keys.prioritized,
        &keys.events,
        &keys.limiter,
        &keys.delayed,
        &keys.paused,
        &keys.meta,
        &keys.pc,
        &keys.marker,
    ];
    let [lmax, ldur] = claim.limiter_args();
    let args = [
        arg(&keys.base),
        arg(now_ms),
        arg(&claim.token),
        arg(claim.lock_ms),
        arg(claim.worker_name.as_deref().unwrap_or("")),
        lmax,
        ldur,
        arg(claim.compat.as_arg()),
    ];
    let script = &SCRIPTS.move_to_active;
    let reply: Value = script.run(con, &k, &args).await?;
    decode_claim(script.name(), reply)
}
