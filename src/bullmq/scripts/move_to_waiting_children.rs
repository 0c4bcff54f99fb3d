//! `lua/moveToWaitingChildren-8.lua`: active → waiting-children while the job has pending
//! children (flows).

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::script::SCRIPTS;

/// Builds KEYS (pure, for tests).
pub(crate) fn keys(keys: &QueueKeys, job_id: &str) -> [String; 8] {
    [
        keys.job(job_id),
        keys.dependencies(job_id),
        keys.unsuccessful(job_id),
        keys.active.clone(),
        keys.waiting_children.clone(),
        keys.stalled.clone(),
        keys.events.clone(),
        keys.meta.clone(),
    ]
}

/// Parks the job (held with `token`) in `waiting-children` when it has a pending child:
/// `child_key` (a full job key, `P:Q:<id>`) or, with `None`, any child.
///
/// # Returns
///
/// `true` when the job moved (its lock is released: the processor must stop and end the
/// attempt with [`ProcessError::waiting_children`](crate::bullmq::ProcessError::waiting_children));
/// `false` when nothing is pending and the job stays active.
///
/// # Errors
///
/// [`Error::Script`]: `FailedChildren` when a `failParentOnFailure` child failed, or the job
/// is gone or no longer ours (`JobMissing`, `LockMissing`, `LockMismatch`, `NotInState`);
/// Redis errors.
pub async fn call<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    now_ms: u64,
    job_id: &str,
    token: &str,
    child_key: Option<&str>,
) -> Result<bool, Error> {
    let k = self::keys(keys, job_id);
    let k: Vec<&str> = k.iter().map(String::as_str).collect();
    let args = [
        arg(job_id),
        arg(token),
        arg(now_ms),
        arg(child_key.unwrap_or("")),
    ];
    let script = &SCRIPTS.move_to_waiting_children;
    let code: i64 = script.run(con, &k, &args).await?;
    Ok(Error::check(script.name(), job_id, code)? == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_job_its_children_and_the_queue() {
        let k = keys(&QueueKeys::new("bull", "q"), "7");
        assert_eq!(
            k,
            [
                "bull:q:7",
                "bull:q:7:dependencies",
                "bull:q:7:unsuccessful",
                "bull:q:active",
                "bull:q:waiting-children",
                "bull:q:stalled",
                "bull:q:events",
                "bull:q:meta",
            ]
        );
    }
}
