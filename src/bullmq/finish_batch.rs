//! Sends the worker's finishes in batches: when several slots end their jobs close together
//! (a busy worker at concurrency 16 or 64), one `moveToFinishedBatch` call finishes them all
//! and claims each slot's next job, so the script call and its round trip are paid once per
//! batch instead of once per job, and Redis, the bottleneck, spends less per job.
//!
//! There is no timer: the batcher sends whatever has queued up as soon as a call slot is
//! free, at most [`MAX_IN_FLIGHT`] calls at a time. A lone finish therefore waits for nothing
//! but a call already in flight (one round trip, well under a millisecond on a healthy
//! Redis), and at concurrency 1 it goes out at once, alone, as the plain `moveToFinished`.
//! Each job's result comes back on its own reply channel; a failed call hands every job in it
//! the same error, so each slot retries its own job on its own backoff, as before.

use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::error::Error;
use super::keys::QueueKeys;
use super::options::KeepJobs;
use super::scripts::move_to_finished::{MoveToFinished, Outcome};
use super::scripts::move_to_finished_batch::MoveToFinishedBatch;
use super::scripts::{Claim, ClaimArgs};
use crate::redis_conn::RedisConn;

/// The most finishes one call carries (its ARGV grow by 15 per job).
const MAX_BATCH: usize = 64;

/// Calls in flight at once: two, so a batch can fill while the previous one runs, and Redis
/// is not left idle for a client round trip between batches.
const MAX_IN_FLIGHT: usize = 2;

/// One job's finish, owned so it can wait in the queue: the fields of a [`MoveToFinished`].
#[derive(Debug)]
pub(crate) struct FinishRequest {
    /// The finish's time (ms since the epoch): `finishedOn`, and the score in the finished
    /// set that age-based retention reads.
    pub now_ms: u64,
    /// The job being finished, whose lock the slot holds.
    pub job_id: String,
    /// Completed with a value, or failed for good.
    pub outcome: Outcome,
    /// Retention for the finished set.
    pub keep: KeepJobs,
    /// The job's `opts.attempts`, so the script knows when `retries-exhausted` is due.
    pub attempts: u32,
    /// Claim the slot's next job in the same call.
    pub fetch_next: bool,
    /// Attempts ended before this one (read at claim); stored as `atm` + 1.
    pub attempts_made: u32,
    /// The deduplication id the claim read, whose key the finish releases.
    pub dedup_id: Option<String>,
    /// The claim read a parent: the finish tells it (flows).
    pub has_parent: bool,
    /// The slot's claim: its token proves the lock.
    pub claim: ClaimArgs,
}

impl FinishRequest {
    fn as_request(&self, metrics_points: Option<u64>) -> MoveToFinished<'_> {
        MoveToFinished {
            now_ms: self.now_ms,
            job_id: &self.job_id,
            outcome: &self.outcome,
            keep: self.keep,
            attempts: self.attempts,
            fetch_next: self.fetch_next,
            attempts_made: self.attempts_made,
            metrics_points,
            dedup_id: self.dedup_id.as_deref(),
            has_parent: self.has_parent,
            claim: &self.claim,
        }
    }
}

type Reply = oneshot::Sender<Result<Claim, Error>>;

/// The queue every slot's finishes go through; one per worker.
pub(crate) struct FinishBatcher {
    tx: mpsc::UnboundedSender<(FinishRequest, Reply)>,
    /// Taken by [`FinishBatcher::start`].
    rx: Mutex<Option<mpsc::UnboundedReceiver<(FinishRequest, Reply)>>>,
}

impl FinishBatcher {
    /// A batcher whose task is not started yet.
    pub(crate) fn new() -> FinishBatcher {
        let (tx, rx) = mpsc::unbounded_channel();
        FinishBatcher {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Starts the task that sends the batches on `con`; it ends when the batcher is dropped.
    /// A second call does nothing.
    pub(crate) fn start(&self, con: RedisConn, keys: Arc<QueueKeys>, metrics: Option<u64>) {
        let rx = self.rx.lock().ok().and_then(|mut rx| rx.take());
        if let Some(rx) = rx {
            tokio::spawn(send_batches(rx, con, keys, metrics));
        }
    }

    /// Finishes one job, in whatever batch it joins; the result is its own.
    ///
    /// # Errors
    ///
    /// As [`MoveToFinished::call`]: the job's script code, or the call's Redis error.
    pub(crate) async fn finish(&self, request: FinishRequest) -> Result<Claim, Error> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::Reply {
            script: MoveToFinishedBatch::script().name(),
            reason: "the finish batcher has stopped".to_string(),
        };
        self.tx.send((request, reply)).map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Takes what has queued up (at least one finish, at most [`MAX_BATCH`]) each time a call
/// slot is free, and sends it.
async fn send_batches(
    mut rx: mpsc::UnboundedReceiver<(FinishRequest, Reply)>,
    con: RedisConn,
    keys: Arc<QueueKeys>,
    metrics: Option<u64>,
) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut con = con.clone();
        let keys = keys.clone();
        tokio::spawn(async move {
            send(&mut con, &keys, metrics, batch).await;
            drop(permit);
        });
    }
}

/// One call for `batch`, each reply to its job: a lone finish as the plain `moveToFinished`.
async fn send(
    con: &mut RedisConn,
    keys: &QueueKeys,
    metrics: Option<u64>,
    batch: Vec<(FinishRequest, Reply)>,
) {
    if let [(request, _)] = batch.as_slice() {
        let result = request.as_request(metrics).call(con, keys).await;
        if let Some((_, reply)) = batch.into_iter().next() {
            // The slot may have gone (aborted at shutdown); its job then stalls as before.
            let _ = reply.send(result);
        }
        return;
    }
    let jobs: Vec<MoveToFinished<'_>> = batch.iter().map(|(r, _)| r.as_request(metrics)).collect();
    let results = MoveToFinishedBatch { jobs: &jobs }.call(con, keys).await;
    drop(jobs);
    match results {
        Ok(results) => {
            for ((_, reply), result) in batch.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            for (_, reply) in batch {
                let _ = reply.send(Err(copy_of(&e)));
            }
        }
    }
}

/// The error of a failed batch call, for each of its jobs: the same Redis error (so a
/// transient one is retried by each slot), or the same reason.
fn copy_of(e: &Error) -> Error {
    match e {
        Error::Redis(r) => Error::Redis(r.clone()),
        Error::Reply { script, reason } => Error::Reply {
            script,
            reason: reason.clone(),
        },
        other => Error::Reply {
            script: MoveToFinishedBatch::script().name(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_call_gives_each_job_an_error_that_keeps_its_kind() {
        let io = redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        let e = copy_of(&Error::Redis(io));
        assert!(e.is_transient(), "{e}");
        let e = copy_of(&Error::Reply {
            script: "s",
            reason: "bad".into(),
        });
        assert!(!e.is_transient() && e.to_string().contains("bad"), "{e}");
    }
}
