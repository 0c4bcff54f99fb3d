//! `lua/moveToWaitingChildren-8.lua`: active → waiting-children while the job has pending
//! children (flows).

use redis::aio::ConnectionLike;

use super::arg;
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};

/// Parks a job this worker holds in `waiting-children` when it has a pending child.
#[derive(Debug, Clone, Copy)]
pub struct MoveToWaitingChildren<'a> {
    /// The move's time (ms since the epoch): the job's score in `waiting-children`.
    pub now_ms: u64,
    /// The parent job.
    pub job_id: &'a str,
    /// The token it was claimed with: the script refuses if the lock is someone else's.
    pub token: &'a str,
    /// Wait for this child only (a full job key, `P:Q:<id>`); `None` waits for any child.
    pub child_key: Option<&'a str>,
}

impl MoveToWaitingChildren<'_> {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.move_to_waiting_children
    }

    /// KEYS in the header's order: the job and its child sets, then the queue's.
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        vec![
            queue.job(self.job_id),
            queue.dependencies(self.job_id),
            queue.unsuccessful(self.job_id),
            queue.active.clone(),
            queue.waiting_children.clone(),
            queue.stalled.clone(),
            queue.events.clone(),
            queue.meta.clone(),
        ]
    }

    /// ARGV in the header's order.
    pub fn args(&self) -> Vec<Vec<u8>> {
        vec![
            arg(self.job_id),
            arg(self.token),
            arg(self.now_ms),
            arg(self.child_key.unwrap_or("")),
        ]
    }

    /// Parks the job if a child is pending.
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
        &self,
        con: &mut C,
        queue: &QueueKeys,
    ) -> Result<bool, Error> {
        let script = Self::script();
        let code: i64 = script.run(con, &self.keys(queue), &self.args()).await?;
        Ok(Error::check(script.name(), self.job_id, code)? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_job_its_children_and_the_queue() {
        let req = MoveToWaitingChildren {
            now_ms: 77,
            job_id: "7",
            token: "t",
            child_key: None,
        };
        assert_eq!(
            req.keys(&QueueKeys::new("bull", "q")),
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

    #[test]
    fn args_send_an_empty_child_for_any_child() {
        let any = MoveToWaitingChildren {
            now_ms: 77,
            job_id: "7",
            token: "t",
            child_key: None,
        };
        assert_eq!(any.args(), [arg("7"), arg("t"), arg(77), Vec::new()]);
        let one = MoveToWaitingChildren {
            child_key: Some("bull:c:1"),
            ..any
        };
        assert_eq!(one.args()[3], arg("bull:c:1"));
    }
}
