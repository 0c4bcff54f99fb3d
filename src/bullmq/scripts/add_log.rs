//! `lua/addLog-2.lua`: appends a log line to the job.

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::script::SCRIPTS;

/// Appends `line`, keeping the newest `keep` lines when given.
///
/// # Returns
///
/// The number of lines kept.
///
/// # Errors
///
/// [`Error::Script`] when the job is gone; Redis errors.
pub async fn call<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    job_id: &str,
    line: &str,
    keep: Option<u64>,
) -> Result<i64, Error> {
    let job_key = keys.job(job_id);
    let logs_key = keys.logs(job_id);
    let script = &SCRIPTS.add_log;
    let args = [arg(job_id), arg(line), keep.map(arg).unwrap_or_default()];
    let n: i64 = script
        .run(con, &[job_key.as_str(), &logs_key], &args)
        .await?;
    Error::check(script.name(), job_id, n)
}
