//! `lua/extendLocks-1.lua`: renews many locks in one call.

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::script::SCRIPTS;

/// Renews the locks of `(job id, token)` pairs for `lock_ms`.
///
/// # Returns
///
/// The ids whose locks were gone or owned by another token.
///
/// # Errors
///
/// Redis errors.
pub async fn call<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    lock_ms: u64,
    jobs: &[(String, String)],
) -> Result<Vec<String>, Error> {
    let mut args = Vec::with_capacity(2 + jobs.len() * 2);
    args.push(arg(&keys.base));
    args.push(arg(lock_ms));
    for (id, token) in jobs {
        args.push(arg(id));
        args.push(arg(token));
    }
    SCRIPTS
        .extend_locks
        .run(con, &[keys.stalled.as_str()], &args)
        .await
}
