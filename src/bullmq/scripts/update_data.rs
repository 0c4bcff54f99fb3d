//! `lua/updateData-1.lua`: replaces a job's data (Node's `job.updateData`).

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};

/// Stores new data on a job.
#[derive(Debug, Clone, Copy)]
pub struct UpdateData<'a> {
    /// The job; the script refuses a job whose hash is gone rather than create one.
    pub job_id: &'a str,
    /// The new `data`, JSON text, stored as-is.
    pub data_json: &'a str,
}

impl UpdateData<'_> {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.update_data
    }

    /// KEYS: the job hash.
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        vec![queue.job(self.job_id)]
    }

    /// ARGV: the data.
    pub fn args(&self) -> Vec<Vec<u8>> {
        vec![arg(self.data_json)]
    }

    /// Stores the data.
    ///
    /// # Errors
    ///
    /// [`Error::Script`] when the job is gone; Redis errors.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        queue: &QueueKeys,
    ) -> Result<(), Error> {
        let script = Self::script();
        let code: i64 = script.run(con, &self.keys(queue), &self.args()).await?;
        Error::check(script.name(), self.job_id, code).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_args_are_the_job_and_its_data() {
        let req = UpdateData {
            job_id: "5",
            data_json: "{\"a\":1}",
        };
        assert_eq!(req.keys(&QueueKeys::new("bull", "q")), ["bull:q:5"]);
        assert_eq!(req.args(), [arg("{\"a\":1}")]);
    }
}
