//! `lua/addStandardJob-7.lua`: adds a job under a chosen id, as a Node `Queue.add` would (for
//! producers written in Rust, such as `fetch-worker reprocess`).

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::Compat;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};

/// Adds one job to the back of the queue, following `compat`'s pause rule.
#[derive(Debug, Clone, Copy)]
pub struct AddStandardJob<'a> {
    /// The job's id: chosen by the caller so a second add of the same id is a no-op (BullMQ's
    /// de-duplication by id).
    pub id: &'a str,
    /// The job's name, which selects the processor (`fetch-job`).
    pub name: &'a str,
    /// Its data, JSON text, stored as-is (`data`).
    pub data_json: &'a str,
    /// Its options, JSON text (`opts`: attempts, backoff, retention), stored as-is.
    pub opts_json: &'a str,
    /// When it was added (ms since the Unix epoch): its `timestamp`, shown by Bull Board.
    pub timestamp_ms: u64,
    /// Whether a paused queue takes the job in `paused` (5) or `wait` (6).
    pub compat: Compat,
}

impl AddStandardJob<'_> {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.add_standard_job
    }

    /// KEYS in the header's order: the queue's lists and the new job's hash.
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        vec![
            queue.wait.clone(),
            queue.paused.clone(),
            queue.meta.clone(),
            queue.active.clone(),
            queue.events.clone(),
            queue.marker.clone(),
            queue.job(self.id),
        ]
    }

    /// ARGV in the header's order.
    pub fn args(&self) -> Vec<Vec<u8>> {
        vec![
            arg(self.id),
            arg(self.name),
            arg(self.data_json),
            arg(self.opts_json),
            arg(self.timestamp_ms),
            arg(self.compat.as_arg()),
        ]
    }

    /// Adds the job.
    ///
    /// # Returns
    ///
    /// True when added; false when the id already names a job (nothing changes).
    ///
    /// # Errors
    ///
    /// Redis errors.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        queue: &QueueKeys,
    ) -> Result<bool, Error> {
        let added: i64 = Self::script()
            .run(con, &self.keys(queue), &self.args())
            .await?;
        Ok(added == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_end_with_the_new_job_and_args_carry_it_verbatim() {
        let req = AddStandardJob {
            id: "day.BMC.1.2026-02-09",
            name: "fetch-job",
            data_json: "{}",
            opts_json: "{\"attempts\":3}",
            timestamp_ms: 1000,
            compat: Compat::V5,
        };
        let keys = req.keys(&QueueKeys::new("bull", "q"));
        assert_eq!(keys[0], "bull:q:wait");
        assert_eq!(keys[6], "bull:q:day.BMC.1.2026-02-09");
        assert_eq!(
            req.args(),
            [
                arg("day.BMC.1.2026-02-09"),
                arg("fetch-job"),
                arg("{}"),
                arg("{\"attempts\":3}"),
                arg(1000),
                arg("5"),
            ]
        );
    }
}
