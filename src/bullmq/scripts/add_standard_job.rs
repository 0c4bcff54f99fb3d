//! `lua/addStandardJob-7.lua`: adds a job under a chosen id, as a Node `Queue.add` would (for
//! producers written in Rust, such as `fetch-worker reprocess`).

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::Compat;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::script::SCRIPTS;

/// A job to add.
#[derive(Debug, Clone, Copy)]
pub struct NewJob<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its data, JSON text.
    pub data_json: &'a str,
    /// Its options, JSON text.
    pub opts_json: &'a str,
    /// When it was added, ms since the Unix epoch.
    pub timestamp_ms: u64,
}

/// Adds `job` to the back of the queue, following `compat`'s pause rule.
///
/// # Returns
///
/// True when added; false when the id already names a job (nothing changes).
///
/// # Errors
///
/// Redis errors.
pub async fn call<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    job: NewJob<'_>,
    compat: Compat,
) -> Result<bool, Error> {
    let job_key = keys.job(job.id);
    let script = &SCRIPTS.add_standard_job;
    let added: i64 = script
        .run(
            con,
            &[
                keys.wait.as_str(),
                keys.paused.as_str(),
                keys.meta.as_str(),
                keys.active.as_str(),
                keys.events.as_str(),
                keys.marker.as_str(),
                job_key.as_str(),
            ],
            &[
                arg(job.id),
                arg(job.name),
                arg(job.data_json),
                arg(job.opts_json),
                arg(job.timestamp_ms),
                arg(compat.as_arg()),
            ],
        )
        .await?;
    Ok(added == 1)
}
