//! `lua/moveToDelayed-12.lua`: active → delayed for a backoff retry or a processor's
//! deferral, with fetch-next.

use redis::Value;
use redis::aio::ConnectionLike;

use super::{Claim, ClaimArgs, arg, arg_ms, decode_end_and_claim};
use crate::bullmq::error::Error;
use crate::bullmq::keys::QueueKeys;
use crate::bullmq::lua::{SCRIPTS, Script};

/// The failed attempt a backoff retry records.
#[derive(Debug, Clone, Copy)]
pub struct AttemptFailure<'a> {
    /// The raw message, stored as `failedReason`.
    pub reason: &'a str,
    /// All stack traces, a JSON array of strings (`stacktrace`).
    pub stacktrace: &'a str,
}

/// Moves a job this worker holds to `delayed`, due `delay_ms` from now.
#[derive(Debug, Clone, Copy)]
pub struct MoveToDelayed<'a> {
    /// The move's time (ms since the epoch); the job is due at `now_ms + delay_ms`.
    pub now_ms: u64,
    /// The job moved.
    pub job_id: &'a str,
    /// How long it waits in `delayed` (ms).
    pub delay_ms: u64,
    /// `Some` for a failed attempt retried after backoff: the attempt counts and its reason
    /// is recorded. `None` for a processor's deferral (BullMQ's `DelayedError`): no attempt is
    /// used and `failedReason` is left alone.
    pub failure: Option<AttemptFailure<'a>>,
    /// Claim the next job in the same call.
    pub fetch_next: bool,
    /// The holder's claim: its token proves the lock; the rest applies to the next job.
    pub claim: &'a ClaimArgs,
}

impl MoveToDelayed<'_> {
    /// The Lua script this request runs.
    pub fn script() -> &'static Script {
        &SCRIPTS.move_to_delayed
    }

    /// KEYS in the header's order.
    pub fn keys(&self, queue: &QueueKeys) -> Vec<String> {
        vec![
            queue.marker.clone(),
            queue.active.clone(),
            queue.prioritized.clone(),
            queue.delayed.clone(),
            queue.job(self.job_id),
            queue.events.clone(),
            queue.meta.clone(),
            queue.stalled.clone(),
            queue.wait.clone(),
            queue.limiter.clone(),
            queue.paused.clone(),
            queue.pc.clone(),
        ]
    }

    /// ARGV in the header's order.
    pub fn args(&self, queue: &QueueKeys) -> Vec<Vec<u8>> {
        let claim = self.claim;
        let (reason, stacktrace) = self
            .failure
            .map(|f| (f.reason, f.stacktrace))
            .unwrap_or(("", ""));
        let [lmax, ldur] = claim.limiter_args();
        vec![
            arg(&queue.base),
            arg(self.now_ms),
            arg(self.job_id),
            arg(&claim.token),
            arg(self.delay_ms),
            arg(reason),
            arg(stacktrace),
            arg(if self.fetch_next { "1" } else { "0" }),
            arg_ms(claim.lock),
            arg(claim.worker_name.as_deref().unwrap_or("")),
            lmax,
            ldur,
            arg(if self.failure.is_none() { "1" } else { "0" }),
            arg(claim.compat.as_arg()),
        ]
    }

    /// Moves the job; returns the next claimed job when `fetch_next` found one.
    ///
    /// # Errors
    ///
    /// [`Error::Script`] when the job is gone or the lock was lost; Redis errors.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        queue: &QueueKeys,
    ) -> Result<Claim, Error> {
        let script = Self::script();
        let reply: Value = script
            .run(con, &self.keys(queue), &self.args(queue))
            .await?;
        decode_end_and_claim(script.name(), self.job_id, reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bullmq::options::Compat;

    #[test]
    fn a_deferral_skips_the_attempt_and_a_retry_records_it() {
        let claim = ClaimArgs {
            token: "w:1".into(),
            lock: std::time::Duration::from_secs(30),
            worker_name: None,
            limiter: None,
            compat: Compat::Auto,
        };
        let deferral = MoveToDelayed {
            now_ms: 100,
            job_id: "9",
            delay_ms: 400,
            failure: None,
            fetch_next: true,
            claim: &claim,
        };
        let queue = QueueKeys::new("bull", "q");
        let a = deferral.args(&queue);
        assert_eq!(
            a[..8],
            [
                arg("bull:q:"),
                arg(100),
                arg("9"),
                arg("w:1"),
                arg(400),
                Vec::new(),
                Vec::new(),
                arg("1")
            ]
        );
        assert_eq!(
            (&a[8], &a[12], &a[13]),
            (&arg(30_000), &arg("1"), &arg("auto"))
        );
        let retry = MoveToDelayed {
            failure: Some(AttemptFailure {
                reason: "boom",
                stacktrace: "[]",
            }),
            fetch_next: false,
            ..deferral
        };
        let a = retry.args(&queue);
        assert_eq!((&a[5], &a[6], &a[7]), (&arg("boom"), &arg("[]"), &arg("0")));
        assert_eq!(a[12], arg("0"));
        let keys = retry.keys(&queue);
        assert_eq!(
            (keys[0].as_str(), keys[4].as_str()),
            ("bull:q:marker", "bull:q:9")
        );
    }
}
