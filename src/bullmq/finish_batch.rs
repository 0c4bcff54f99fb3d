//! Sends the worker's finishes in batches: when several slots end their jobs close together
//! (a busy worker at concurrency 16 or 64), one `moveToFinishedBatch` call finishes them all
//! and claims each slot's next job, so the script call, its round trip and the claim's fixed
//! part are paid once per batch instead of once per job, and Redis, the bottleneck, spends
//! less per job.
//!
//! There is no timer. At most [`MAX_IN_FLIGHT`] calls run at once, and the batcher decides
//! when to send from what it knows of the worker's slots:
//! - no call in flight: Redis is idle, so whatever has queued goes at once (a lone finish at
//!   concurrency 1 goes alone, as the plain `moveToFinished`);
//! - one call in flight: Redis is busy with it, so the next batch waits until every other
//!   open slot has queued its finish (nothing more will come soon), or until the call in
//!   flight returns, whichever is first. Sending the first few finishes at once instead
//!   would split the slots into a big and a small batch that chase each other, paying the
//!   call's fixed cost for a handful of jobs (measured: about 17 jobs per call at 64 against
//!   about 32 this way).
//!
//! So a finish waits for nothing but a call already in flight (one batch's time in Redis,
//! about a millisecond at 64), and two half-size batches alternate on a busy worker: one
//! runs in Redis while the slots of the other run their jobs and queue their next finishes.
//! Each job's result comes back on its own reply channel; a failed call hands every job in it
//! the same error, so each slot retries its own job on its own backoff, as before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, oneshot};

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
/// is not left idle for a client round trip between batches (four measured no better).
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
    /// Slots that hold a job (running it, or waiting for its finish): see [`OpenSlot`].
    open_slots: Arc<AtomicUsize>,
    /// Where the finishes go (set by `start`): the batcher's task sends batches to it, and a
    /// lone slot calls it from its own task.
    target: OnceLock<Target>,
}

/// Where finishes are sent: the worker's connection, its queue and its metrics setting.
#[derive(Clone)]
struct Target {
    con: RedisConn,
    keys: Arc<QueueKeys>,
    metrics: Option<u64>,
}

impl Target {
    /// One finish, as the plain `moveToFinished`.
    async fn finish_one(&self, request: &FinishRequest) -> Result<Claim, Error> {
        let mut con = self.con.clone();
        request
            .as_request(self.metrics)
            .call(&mut con, &self.keys)
            .await
    }
}

/// A slot holding a job, counted while it lives, so the batcher knows how many finishes may
/// still come; dropped when the slot ends (its last finish claimed nothing, or it stopped).
pub(crate) struct OpenSlot(Arc<AtomicUsize>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl FinishBatcher {
    /// A batcher whose task is not started yet.
    pub(crate) fn new() -> FinishBatcher {
        let (tx, rx) = mpsc::unbounded_channel();
        FinishBatcher {
            tx,
            rx: Mutex::new(Some(rx)),
            open_slots: Arc::new(AtomicUsize::new(0)),
            target: OnceLock::new(),
        }
    }

    /// Starts the task that sends the batches on `con`; it ends when the batcher is dropped.
    /// A second call does nothing.
    pub(crate) fn start(&self, con: RedisConn, keys: Arc<QueueKeys>, metrics: Option<u64>) {
        let rx = self.rx.lock().ok().and_then(|mut rx| rx.take());
        if let Some(rx) = rx {
            let target = Target { con, keys, metrics };
            let _ = self.target.set(target.clone());
            tokio::spawn(send_batches(rx, target, self.open_slots.clone()));
        }
    }

    /// Counts a slot that has just been given a job, until the returned guard is dropped.
    pub(crate) fn open_slot(&self) -> OpenSlot {
        self.open_slots.fetch_add(1, Ordering::Relaxed);
        OpenSlot(self.open_slots.clone())
    }

    /// Finishes one job, in whatever batch it joins; the result is its own.
    ///
    /// # Errors
    ///
    /// As [`MoveToFinished::call`]: the job's script code, or the call's Redis error.
    pub(crate) async fn finish(&self, request: FinishRequest) -> Result<Claim, Error> {
        // The only slot holding a job (concurrency 1, or a quiet moment): no other finish is
        // queued or in flight, so nothing could join it. It calls at once from its own task,
        // without the hops through the batcher's task (a few µs of a job's latency).
        if self.open_slots.load(Ordering::Relaxed) <= 1
            && let Some(target) = self.target.get()
        {
            return target.finish_one(&request).await;
        }
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::Reply {
            script: MoveToFinishedBatch::script().name(),
            reason: "the finish batcher has stopped".to_string(),
        };
        self.tx.send((request, reply)).map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Sends what has queued up (at most [`MAX_BATCH`] per call) when the module's rule says so:
/// at once when no call is in flight, else once every other open slot has queued its finish
/// or the call in flight has returned.
async fn send_batches(
    mut rx: mpsc::UnboundedReceiver<(FinishRequest, Reply)>,
    target: Target,
    open_slots: Arc<AtomicUsize>,
) {
    // Each call in flight reports here how many jobs it carried, as soon as Redis answered.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<usize>();
    let mut queued: Vec<(FinishRequest, Reply)> = Vec::new();
    let (mut calls, mut carried) = (0usize, 0usize);
    let mut open = true;
    loop {
        if send_now(
            queued.len(),
            calls,
            carried,
            open_slots.load(Ordering::Relaxed),
        ) {
            let batch: Vec<_> = queued.drain(..queued.len().min(MAX_BATCH)).collect();
            calls += 1;
            carried += batch.len();
            let (target, done) = (target.clone(), done_tx.clone());
            tokio::spawn(async move { send(&target, batch, done).await });
            continue;
        }
        if !open && queued.is_empty() && calls == 0 {
            return;
        }
        tokio::select! {
            got = rx.recv(), if open => match got {
                Some(first) => {
                    queued.push(first);
                    while let Ok(next) = rx.try_recv() {
                        queued.push(next);
                    }
                }
                None => open = false,
            },
            Some(jobs) = done_rx.recv() => {
                calls -= 1;
                carried -= jobs;
            }
        }
    }
}

/// The module's rule: whether `queued` finishes go now, with `calls` calls in flight carrying
/// `carried` jobs, out of `open_slots` slots holding a job.
fn send_now(queued: usize, calls: usize, carried: usize, open_slots: usize) -> bool {
    if queued == 0 || calls >= MAX_IN_FLIGHT {
        return false;
    }
    // Slots running their job, whose finishes may still join this batch.
    let running = open_slots.saturating_sub(queued + carried);
    calls == 0 || running == 0 || queued >= MAX_BATCH
}

/// One call for `batch`, each reply to its job: a lone finish as the plain `moveToFinished`.
/// `done` hears the batch's size once Redis has answered, before the replies go out, so the
/// batcher counts the slots that get them as running.
async fn send(
    target: &Target,
    batch: Vec<(FinishRequest, Reply)>,
    done: mpsc::UnboundedSender<usize>,
) {
    let size = batch.len();
    if let [(request, _)] = batch.as_slice() {
        let result = target.finish_one(request).await;
        let _ = done.send(size);
        if let Some((_, reply)) = batch.into_iter().next() {
            // The slot may have gone (aborted at shutdown); its job then stalls as before.
            let _ = reply.send(result);
        }
        return;
    }
    let jobs: Vec<MoveToFinished<'_>> = batch
        .iter()
        .map(|(r, _)| r.as_request(target.metrics))
        .collect();
    let mut con = target.con.clone();
    let results = MoveToFinishedBatch { jobs: &jobs }
        .call(&mut con, &target.keys)
        .await;
    drop(jobs);
    let _ = done.send(size);
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
    fn a_finish_goes_at_once_while_redis_is_idle() {
        // Concurrency 1, or the first finish of a busy worker: nothing in flight.
        assert!(send_now(1, 0, 0, 1));
        assert!(send_now(1, 0, 0, 64));
        assert!(!send_now(0, 0, 0, 64), "nothing to send");
    }

    #[test]
    fn with_a_call_in_flight_the_next_batch_waits_for_the_running_slots() {
        // 64 slots: 32 in the call in flight, 10 queued, 22 still running their jobs.
        assert!(!send_now(10, 1, 32, 64));
        // Every other slot has queued its finish: nothing more will come soon.
        assert!(send_now(32, 1, 32, 64));
        // A full batch goes whatever the rest do.
        assert!(send_now(MAX_BATCH, 1, 0, 200));
        // Slots that ended meanwhile (the count is only ever late by a slot or two).
        assert!(send_now(5, 1, 32, 30));
    }

    #[test]
    fn never_more_than_two_calls_in_flight() {
        assert!(!send_now(64, MAX_IN_FLIGHT, 64, 128));
    }

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
