//! `lua/moveToActive-10.lua`: wait/prioritized → active, locked with the worker's token.

use redis::Value;
use redis::aio::ConnectionLike;

use super::{Claim, ClaimArgs, arg, arg_ms, decode_claim};
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};

/// Claims the next ready job (promoting due delayed jobs first).
#[derive(Debug, Clone, Copy)]
pub struct MoveToActive<'a> {
    /// The claim's time (ms since the epoch): the job's `processedOn`, and the clock for
    /// promoting delayed jobs and for the rate limiter.
    pub now_ms: u64,
    /// Who claims, for how long, under what rate limit.
    pub claim: &'a ClaimArgs,
}

impl MoveToActive<'_> {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.move_to_active
    }

    /// KEYS in the header's order.
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        vec![
            queue.wait.clone(),
            queue.active.clone(),
            queue.prioritized.clone(),
            queue.events.clone(),
            queue.limiter.clone(),
            queue.delayed.clone(),
            queue.paused.clone(),
            queue.meta.clone(),
            queue.pc.clone(),
            queue.marker.clone(),
        ]
    }

    /// ARGV in the header's order.
    pub fn args(&self, queue: &QueueKeys) -> Vec<Vec<u8>> {
        let claim = self.claim;
        let [lmax, ldur] = claim.limiter_args();
        vec![
            arg(&queue.base),
            arg(self.now_ms),
            arg(&claim.token),
            arg_ms(claim.lock),
            arg(claim.worker_name.as_deref().unwrap_or("")),
            lmax,
            ldur,
            arg(claim.compat.as_arg()),
        ]
    }

    /// Claims the next job, or says why none was claimed (empty, rate limited, next due).
    ///
    /// # Errors
    ///
    /// Redis errors and malformed replies.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        queue: &QueueKeys,
    ) -> Result<Claim, Error> {
        let script = Self::script();
        let reply: Value = script
            .run(con, &self.keys(queue), &self.args(queue))
            .await?;
        decode_claim(script.name(), reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bullmq::options::Compat;

    #[test]
    fn args_carry_the_claim_and_an_empty_limiter_when_unlimited() {
        let claim = ClaimArgs {
            token: "w:1".into(),
            lock: std::time::Duration::from_secs(30),
            worker_name: Some("pb".into()),
            limiter: None,
            compat: Compat::V5,
        };
        let req = MoveToActive {
            now_ms: 42,
            claim: &claim,
        };
        let queue = QueueKeys::new("bull", "q");
        assert_eq!(
            req.args(&queue),
            [
                arg("bull:q:"),
                arg(42),
                arg("w:1"),
                arg(30_000),
                arg("pb"),
                Vec::new(),
                Vec::new(),
                arg("5")
            ]
        );
        let keys = req.keys(&queue);
        assert_eq!(
            (keys[0].as_str(), keys[9].as_str()),
            ("bull:q:wait", "bull:q:marker")
        );
        let limited = ClaimArgs {
            limiter: Some((10, 1000)),
            ..claim.clone()
        };
        let args = MoveToActive {
            claim: &limited,
            ..req
        }
        .args(&queue);
        assert_eq!((&args[5], &args[6]), (&arg(10), &arg(1000)));
    }
}
