//! `lua/extendLocks-1.lua`: renews many locks in one call (one round trip per renewer tick,
//! however many jobs are in flight).

use std::time::Duration;

use redis::aio::ConnectionLike;

use super::{arg, arg_ms};
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};

/// Renews the locks of `(job id, token)` pairs for `lock`.
#[derive(Debug, Clone, Copy)]
pub struct ExtendLocks<'a> {
    /// The new time-to-live of each lock (the worker's lock duration).
    pub lock: Duration,
    /// The jobs to renew with the token each was claimed with; a lock held by another token is
    /// left alone and reported.
    pub jobs: &'a [(String, String)],
}

impl ExtendLocks<'_> {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.extend_locks
    }

    /// KEYS: the stalled set, from which renewed jobs are removed.
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        vec![queue.stalled.clone()]
    }

    /// ARGV: the base key, the duration, then id and token of each job.
    pub fn args(&self, queue: &QueueKeys) -> Vec<Vec<u8>> {
        let mut args = Vec::with_capacity(2 + self.jobs.len() * 2);
        args.push(arg(&queue.base));
        args.push(arg_ms(self.lock));
        for (id, token) in self.jobs {
            args.push(arg(id));
            args.push(arg(token));
        }
        args
    }

    /// Renews the locks.
    ///
    /// # Returns
    ///
    /// The ids whose locks were gone or owned by another token.
    ///
    /// # Errors
    ///
    /// Redis errors.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        queue: &QueueKeys,
    ) -> Result<Vec<String>, Error> {
        Self::script()
            .run(con, &self.keys(queue), &self.args(queue))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_pair_each_job_with_its_token() {
        let jobs = [
            ("1".to_string(), "t:1".to_string()),
            ("2".into(), "t:2".into()),
        ];
        let req = ExtendLocks {
            lock: Duration::from_secs(30),
            jobs: &jobs,
        };
        let queue = QueueKeys::new("bull", "q");
        assert_eq!(req.keys(&queue), ["bull:q:stalled"]);
        assert_eq!(
            req.args(&queue),
            [
                arg("bull:q:"),
                arg(30_000),
                arg("1"),
                arg("t:1"),
                arg("2"),
                arg("t:2")
            ]
        );
    }
}
