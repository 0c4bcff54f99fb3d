//! `lua/addLog-2.lua`: appends a log line to the job (what Bull Board shows under "Logs").

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};

/// Appends `line` to the job's log list, keeping the newest `keep` lines when given.
#[derive(Debug, Clone, Copy)]
pub struct AddLog<'a> {
    /// The job whose log grows; the script refuses a job whose hash is gone, so a line never
    /// creates an orphan log list.
    pub job_id: &'a str,
    /// The line as stored (callers cap it first: it is shown verbatim by Bull Board).
    pub line: &'a str,
    /// The job's `keepLogs`: trim to the newest this many lines; `None` keeps all.
    pub keep: Option<u64>,
}

impl AddLog<'_> {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.add_log
    }

    /// KEYS in the header's order: the job hash, its log list.
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        vec![queue.job(self.job_id), queue.logs(self.job_id)]
    }

    /// ARGV in the header's order.
    pub fn args(&self) -> Vec<Vec<u8>> {
        vec![
            arg(self.job_id),
            arg(self.line),
            self.keep.map(arg).unwrap_or_default(),
        ]
    }

    /// Appends the line.
    ///
    /// # Returns
    ///
    /// The number of lines kept.
    ///
    /// # Errors
    ///
    /// [`Error::Script`] when the job is gone; Redis errors.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        queue: &QueueKeys,
    ) -> Result<i64, Error> {
        let script = Self::script();
        let n: i64 = script.run(con, &self.keys(queue), &self.args()).await?;
        Error::check(script.name(), self.job_id, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_args_name_the_job_and_its_limit() {
        let req = AddLog {
            job_id: "7",
            line: "hello",
            keep: Some(3),
        };
        assert_eq!(
            req.keys(&QueueKeys::new("bull", "q")),
            ["bull:q:7", "bull:q:7:logs"]
        );
        assert_eq!(req.args(), [arg("7"), arg("hello"), arg(3)]);
        let unlimited = AddLog { keep: None, ..req };
        assert_eq!(unlimited.args()[2], b"");
    }
}
