//! `lua/updateProgress-3.lua`: stores progress and emits `progress` (what `QueueEvents` and
//! Bull Board show while a job runs).

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};

/// Stores a job's progress.
#[derive(Debug, Clone, Copy)]
pub struct UpdateProgress<'a> {
    /// The job; the script refuses a job whose hash is gone rather than create one.
    pub job_id: &'a str,
    /// The progress, JSON text (a number or an object), stored and emitted as-is.
    pub progress_json: &'a str,
}

impl UpdateProgress<'_> {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.update_progress
    }

    /// KEYS in the header's order: the job hash, the event stream, meta (its `maxLenEvents`).
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        vec![
            queue.job(self.job_id),
            queue.events.clone(),
            queue.meta.clone(),
        ]
    }

    /// ARGV in the header's order.
    pub fn args(&self) -> Vec<Vec<u8>> {
        vec![arg(self.job_id), arg(self.progress_json)]
    }

    /// Stores the progress.
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
    fn keys_and_args_name_the_job_and_its_progress() {
        let req = UpdateProgress {
            job_id: "5",
            progress_json: "42",
        };
        assert_eq!(
            req.keys(&QueueKeys::new("bull", "q")),
            ["bull:q:5", "bull:q:events", "bull:q:meta"]
        );
        assert_eq!(req.args(), [arg("5"), arg("42")]);
    }
}
