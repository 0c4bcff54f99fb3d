//! `lua/updateProgress-3.lua`: stores progress and emits `progress`.

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::script::SCRIPTS;

/// Stores `progress` (JSON text) on the job.
///
/// # Errors
///
/// [`Error::Script`] when the job is gone; Redis errors.
pub async fn call<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    job_id: &str,
    progress_json: &str,
) -> Result<(), Error> {
    let job_key = keys.job(job_id);
    let k = [job_key.as_str(), &keys.events, &keys.meta];
    let script = &SCRIPTS.update_progress;
    let code: i64 = script
        .run(con, &k, &[arg(job_id), arg(progress_json)])
        .await?;
    Error::check(script.name(), job_id, code).map(drop)
}
