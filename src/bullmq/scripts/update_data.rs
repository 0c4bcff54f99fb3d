//! `lua/updateData-1.lua`: replaces a job's data.

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::script::SCRIPTS;

/// Stores `data_json` (JSON text) as the job's data.
///
/// # Errors
///
/// [`Error::Script`] when the job is gone; Redis errors.
pub async fn call<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    job_id: &str,
    data_json: &str,
) -> Result<(), Error> {
    let job_key = keys.job(job_id);
    let script = &SCRIPTS.update_data;
    let code: i64 = script
        .run(con, &[job_key.as_str()], &[arg(data_json)])
        .await?;
    Error::check(script.name(), job_id, code).map(drop)
}
