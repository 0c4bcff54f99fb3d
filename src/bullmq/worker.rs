//! The worker: claims jobs, runs the processor, finishes or retries them.
//!
//! One fetch loop claims jobs sequentially while a slot is free, as Node's worker does. Each
//! claimed job runs in its own task; when it ends, the task finishes it with fetch-next and
//! carries on with the job that call returned. Completions and final failures go through the
//! `FinishBatcher` (`finish_batch`), which sends the finishes of slots that end together as
//! one call, so a busy worker costs less than one script call per job.
//! When a claim finds nothing, the loop waits on the queue's marker with `BZPOPMIN` on a
//! dedicated connection (no response timeout; a watchdog replaces it when a reply is overdue).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use redis::Value;
use serde_json::Value as Json;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::clock::now_ms;
use super::error::{Error, ScriptCode};
use super::finish_batch::{FinishBatcher, FinishRequest};
use super::job::Job;
use super::keys::QueueKeys;
use super::lock::{LockTable, renew_locks};
use super::observer::{AttemptOutcome, JobEnd, Observer};
use super::options::{KeepJobs, WorkerOptions};
use super::processor::{Defer, Disposition, JobContext, JobHandle, ProcessError, Processor};
use super::scripts::add_log::AddLog;
use super::scripts::move_job_from_active_to_wait::MoveJobFromActiveToWait;
use super::scripts::move_to_active::MoveToActive;
use super::scripts::move_to_delayed::{AttemptFailure, MoveToDelayed};
use super::scripts::move_to_finished::Outcome;
use super::scripts::retry_job::RetryJob;
use super::scripts::{Claim, ClaimArgs};
use super::stalled::check_stalled;
use crate::redis_conn::{AnyConn, Connector, RedisConn, RedisTarget, TlsFiles};

/// The longest a claim loop sleeps while rate limited before it tries again (BullMQ's
/// `maximumRateLimitDelay`), so due delayed jobs keep being promoted.
const MAX_RATE_LIMIT_DELAY: Duration = Duration::from_secs(30);

/// The longest a marker wait lasts when a delayed job is due later (BullMQ's 10 s cap).
const MAX_BLOCK: Duration = Duration::from_secs(10);

/// How finishing retries a transient Redis error (a failover, a restart, `OOM`): after
/// 100 ms, doubling up to 5 s between two tries, for as long as the job's lock may still be
/// held (its last renewal is younger than the lock duration; renewal goes on meanwhile, so a
/// short outage never costs the job). Past that, another worker may own the job and stalled
/// recovery takes it.
const FINISH_BACKOFF: crate::backoff::Backoff = crate::backoff::Backoff {
    first: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

/// What a run did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// Jobs this run moved to `completed` (counted once Redis has taken the move, like the
    /// other counts).
    pub completed: u64,
    /// Jobs failed for good.
    pub failed: u64,
    /// Attempts that failed and were scheduled again.
    pub retried: u64,
    /// Jobs handed back to the queue: at shutdown, or by a processor that rate-limited the
    /// queue.
    pub released: u64,
    /// Attempts whose processor parked the job in `delayed` ([`ProcessError::delayed`]).
    pub delayed: u64,
}

#[derive(Default)]
struct Counters {
    completed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    released: AtomicU64,
    delayed: AtomicU64,
}

/// Shared state of one worker process.
struct Inner {
    /// Settings, fixed for the worker's life (read on every claim and finish).
    opts: WorkerOptions,
    /// Every key of the queue, spelled once.
    keys: Arc<QueueKeys>,
    /// Connection for script calls; replaced after a restart or a failover (in Sentinel mode
    /// the new one goes to the new master).
    con: RedisConn,
    /// What runs each job (the POS pipeline, or a test processor); shared by every slot.
    processor: Arc<dyn Processor>,
    /// This worker's id; lock tokens are `<id>:<n>`.
    id: String,
    /// The `<n>` of the next token.
    token_seq: AtomicU64,
    /// In-flight jobs, for lock renewal and shutdown.
    locks: LockTable,
    /// Cancelled when the worker stops claiming (shutdown or drained).
    stop_claiming: CancellationToken,
    /// Cancelled when in-flight jobs must stop at once (shutdown timeout).
    abort_jobs: CancellationToken,
    /// Woken when a job task ends, so the fetch loop re-checks "drained".
    task_ended: Notify,
    /// Outcome counters, returned as the [`RunSummary`] when the worker stops.
    counters: Counters,
    /// Who else wants to know (metrics, the app's result cache), in the order added.
    observers: Vec<Arc<dyn Observer>>,
    /// Until when (ms since epoch) nothing is claimed because a processor rate-limited the
    /// queue ([`ProcessError::rate_limited`]); 0 when not limited. Node's `limitUntil`.
    limit_until: AtomicU64,
    /// Where slots send their completions and final failures, so jobs that end together
    /// are finished (and their slots' next jobs claimed) in one script call.
    finisher: FinishBatcher,
}

/// A BullMQ worker for one queue.
pub struct Worker {
    inner: Arc<Inner>,
    /// Opens the blocking marker connection (to the current master).
    connector: Connector,
}

impl Worker {
    /// Connects to the queue database at `redis_url` (any form [`RedisTarget::parse`] takes,
    /// without TLS files), waiting for Redis as [`RedisConn::connect`] does.
    ///
    /// # Errors
    ///
    /// A bad URL, or an error retrying cannot fix (refused credentials).
    pub async fn connect(
        redis_url: &str,
        opts: WorkerOptions,
        processor: Arc<dyn Processor>,
    ) -> Result<Worker, Error> {
        let target = RedisTarget::parse(redis_url, &TlsFiles::default())?;
        let con = RedisConn::connect(&target, "queue").await?;
        Ok(Worker::with_connection(con, opts, processor))
    }

    /// A worker on `con`, a connection to the queue database.
    pub fn with_connection(
        con: RedisConn,
        opts: WorkerOptions,
        processor: Arc<dyn Processor>,
    ) -> Worker {
        let keys = Arc::new(QueueKeys::new(&opts.prefix, &opts.queue));
        let connector = con.connector().clone();
        Worker {
            inner: Arc::new(Inner {
                keys,
                con,
                processor,
                id: uuid::Uuid::new_v4().to_string(),
                token_seq: AtomicU64::new(0),
                locks: LockTable::default(),
                stop_claiming: CancellationToken::new(),
                abort_jobs: CancellationToken::new(),
                task_ended: Notify::new(),
                counters: Counters::default(),
                observers: Vec::new(),
                limit_until: AtomicU64::new(0),
                finisher: FinishBatcher::new(),
                opts,
            }),
            connector,
        }
    }

    /// Reports every attempt's outcome and duration, and every job's end, to `observer`
    /// (metrics, the app's result cache); may be called several times.
    ///
    /// # Panics
    ///
    /// Never in practice: it is called before the worker runs, while this handle is the only
    /// owner of its state; a second owner makes it a no-op rather than a panic.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Worker {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.observers.push(observer);
        }
        self
    }

    /// Runs until `shutdown` resolves (or, with `until_drained`, until the queue is empty).
    ///
    /// On shutdown it stops claiming, lets in-flight jobs finish within the shutdown timeout,
    /// hands the rest back to the queue (no attempt used), then stops lock renewal and the
    /// stalled checker.
    ///
    /// # Errors
    ///
    /// [`Error::Target`] when the connection is to a Redis Cluster and neither the prefix nor
    /// the queue name carries a hash tag (every script would fail with `CROSSSLOT`); nothing
    /// is claimed then. Redis failures are logged and retried, not returned.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<RunSummary, Error> {
        let opts = &self.inner.opts;
        if self.connector.target().is_cluster()
            && !QueueKeys::has_hash_tag(&opts.prefix, &opts.queue)
        {
            return Err(crate::redis_conn::TargetError::Invalid(format!(
                "Redis Cluster: {}",
                QueueKeys::HASH_TAG_NEEDED
            ))
            .into());
        }
        let inner = self.inner.clone();
        inner.finisher.start(
            inner.con.clone(),
            inner.keys.clone(),
            inner.opts.metrics_max_data_points,
        );
        let background = CancellationToken::new();
        let helpers = TaskTracker::new();
        helpers.spawn(renew_locks(
            inner.locks.clone(),
            inner.con.clone(),
            inner.keys.clone(),
            inner.opts.lock_duration,
            background.clone(),
        ));
        helpers.spawn(check_stalled(
            inner.con.clone(),
            inner.keys.clone(),
            inner.opts.stalled_interval,
            inner.opts.max_stalled_count,
            inner.opts.compat,
            background.clone(),
        ));
        helpers.close();

        let jobs = TaskTracker::new();
        let fetch = fetch_loop(inner.clone(), self.connector.clone(), jobs.clone());
        tokio::select! {
            _ = fetch => {}
            _ = shutdown => {
                tracing::info!("shutdown requested: no new jobs will be claimed");
            }
        }
        inner.stop_claiming.cancel();
        jobs.close();

        let timeout = inner.opts.shutdown_timeout;
        if tokio::time::timeout(timeout, jobs.wait()).await.is_err() {
            tracing::warn!(
                in_flight = inner.locks.len(),
                "shutdown timeout reached: handing unfinished jobs back to the queue"
            );
            inner.abort_jobs.cancel();
            jobs.wait().await;
            release_all(&inner).await;
        }
        background.cancel();
        helpers.wait().await;
        for observer in &inner.observers {
            observer.flush().await;
        }
        let c = &inner.counters;
        let summary = RunSummary {
            completed: c.completed.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            released: c.released.load(Ordering::Relaxed),
            delayed: c.delayed.load(Ordering::Relaxed),
        };
        tracing::info!(
            completed = summary.completed,
            failed = summary.failed,
            retried = summary.retried,
            released = summary.released,
            delayed = summary.delayed,
            "worker stopped"
        );
        Ok(summary)
    }
}

/// The dedicated blocking connection, named like Node's so dashboards count this worker.
struct Blocker {
    connector: Connector,
    con: Option<AnyConn>,
    name: String,
    /// A `BZPOPMIN` was sent and its reply not read: the wait was abandoned (the claim loop
    /// moved on when a job ended). Redis still holds that call blocked on the connection, and
    /// it would pop the next marker for nobody, leaving the next wait to sleep its full
    /// timeout; so the next wait opens a fresh connection (closing the old one ends the call).
    in_flight: bool,
}

impl Blocker {
    async fn connection(&mut self) -> Result<&mut AnyConn, Error> {
        if self.con.is_none() {
            // No response bound: BZPOPMIN answers when its own timeout ends (the watchdog in
            // `wait` catches a dead connection). In Cluster mode this is a cluster connection
            // of its own, which sends BZPOPMIN to the node owning the marker's slot (and
            // `CLIENT SETNAME` to every node it holds a connection to).
            let mut con = self.connector.open(Duration::from_secs(2), None).await?;
            let _: () = redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(&self.name)
                .query_async(&mut con)
                .await?;
            self.con = Some(con);
        }
        Ok(self.con.as_mut().expect("set above"))
    }

    /// Waits on the marker for at most `timeout`.
    ///
    /// # Returns
    ///
    /// The popped member's score (0 = go now; a future time = a delayed job is due then), or
    /// `None` on timeout.
    async fn wait(&mut self, marker: &str, timeout: Duration) -> Result<Option<f64>, Error> {
        let secs = timeout.as_secs_f64().max(0.001);
        if self.in_flight {
            self.con = None;
        }
        self.in_flight = true;
        let con = self.connection().await?;
        let mut cmd = redis::cmd("BZPOPMIN");
        cmd.arg(marker).arg(format!("{secs:.3}"));
        let call = cmd.query_async::<Value>(con);
        // Watchdog: a reply overdue by a second means the connection is broken.
        let reply = tokio::time::timeout(timeout + Duration::from_secs(1), call).await;
        self.in_flight = false;
        match reply {
            Ok(Ok(Value::Array(items))) => Ok(items.get(2).and_then(score)),
            Ok(Ok(_)) => Ok(None),
            Ok(Err(e)) => {
                self.con = None;
                Err(e.into())
            }
            Err(_) => {
                tracing::warn!("marker wait overdue; reconnecting the blocking connection");
                self.con = None;
                Ok(None)
            }
        }
    }
}

fn score(v: &Value) -> Option<f64> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::Double(d) => Some(*d),
        Value::Int(i) => Some(*i as f64),
        _ => None,
    }
}

/// Claims jobs while slots are free, until `stop_claiming` is cancelled or (with
/// `until_drained`) the queue is empty and nothing is in flight.
async fn fetch_loop(inner: Arc<Inner>, connector: Connector, jobs: TaskTracker) {
    let slots = Arc::new(Semaphore::new(inner.opts.concurrency));
    let mut blocker = Blocker {
        connector,
        con: None,
        in_flight: false,
        name: QueueKeys::client_name(
            &inner.opts.prefix,
            &inner.opts.queue,
            inner.opts.name.as_deref(),
        ),
    };
    // Open the named connection now, so the worker is listed even while busy.
    if let Err(e) = blocker.connection().await {
        tracing::warn!(error.message = %e, "could not open the blocking connection yet");
    }
    let mut drained = false;
    let mut block_until: u64 = 0;
    let mut pause = Duration::from_millis(100);
    let mut con = inner.con.clone();
    loop {
        let permit = tokio::select! {
            _ = inner.stop_claiming.cancelled() => return,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };

        if drained {
            let now = now_ms();
            let timeout = if block_until > 0 {
                Duration::from_millis(block_until.saturating_sub(now)).min(MAX_BLOCK)
            } else {
                inner.opts.drain_delay
            };
            if block_until == 0 || block_until > now {
                let ended = inner.task_ended.notified();
                tokio::select! {
                    _ = inner.stop_claiming.cancelled() => return,
                    _ = ended => {}
                    res = blocker.wait(&inner.keys.marker, timeout) => match res {
                        Ok(Some(s)) if s as u64 > now_ms() => {
                            block_until = s as u64;
                            drop(permit);
                            continue;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error.message = %e, "marker wait failed");
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_secs(2));
                        }
                    },
                }
            }
        }

        let limited_for = inner.rate_limited_for(now_ms());
        if limited_for > 0 {
            // A processor rate-limited the queue: wait it out (at most 30 s, then look again),
            // then claim at once rather than wait for a marker.
            let nap = Duration::from_millis(limited_for).min(MAX_RATE_LIMIT_DELAY);
            tokio::select! {
                _ = inner.stop_claiming.cancelled() => return,
                _ = tokio::time::sleep(nap) => {}
            }
            drained = false;
        }

        let claim = ClaimArgs {
            token: inner.next_token(),
            lock: inner.opts.lock_duration,
            worker_name: inner.opts.name.clone(),
            limiter: inner.opts.limiter,
            compat: inner.opts.compat,
        };
        let claimed = MoveToActive {
            now_ms: now_ms(),
            claim: &claim,
        }
        .call(&mut con, &inner.keys)
        .await;
        match claimed {
            Ok(Claim::Job(job)) => {
                pause = Duration::from_millis(100);
                drained = false;
                block_until = 0;
                inner.locks.track(&job.id, &claim.token);
                let task_inner = inner.clone();
                let open = inner.finisher.open_slot();
                jobs.spawn(async move {
                    run_slot(&task_inner, *job, claim).await;
                    drop(open);
                    drop(permit);
                    task_inner.task_ended.notify_one();
                });
            }
            Ok(Claim::RateLimited(ms)) => {
                drop(permit);
                let nap = Duration::from_millis(ms).min(MAX_RATE_LIMIT_DELAY);
                tokio::select! {
                    _ = inner.stop_claiming.cancelled() => return,
                    _ = tokio::time::sleep(nap) => {}
                }
            }
            Ok(Claim::NextDelayedAt(due)) => {
                drop(permit);
                drained = true;
                block_until = due;
            }
            Ok(Claim::Empty) => {
                drop(permit);
                drained = true;
                block_until = 0;
                if inner.opts.until_drained && queue_is_empty(&inner, &slots).await {
                    tracing::info!("queue drained");
                    return;
                }
            }
            Err(e) => {
                drop(permit);
                tracing::warn!(error.message = %e, "claim failed; retrying");
                tokio::select! {
                    _ = inner.stop_claiming.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// True when nothing of ours is in flight and the queue holds no waiting, prioritized,
/// delayed or active job.
async fn queue_is_empty(inner: &Inner, slots: &Semaphore) -> bool {
    if slots.available_permits() < inner.opts.concurrency {
        return false;
    }
    let k = &inner.keys;
    let mut con = inner.con.clone();
    let counts: Result<(u64, u64, u64, u64), _> = redis::pipe()
        .llen(&k.wait)
        .zcard(&k.prioritized)
        .zcard(&k.delayed)
        .llen(&k.active)
        .query_async(&mut con)
        .await;
    matches!(counts, Ok((0, 0, 0, 0)))
}

impl Inner {
    /// True while `id`'s lock may still be ours: its last successful renewal (or the claim) is
    /// younger than the lock duration, and the shutdown timeout has not run out.
    fn may_hold_lock(&self, id: &str) -> bool {
        !self.abort_jobs.is_cancelled()
            && self
                .locks
                .renewed_at(id)
                .is_some_and(|at| at.elapsed() < self.opts.lock_duration)
    }

    fn next_token(&self) -> String {
        format!(
            "{}:{}",
            self.id,
            self.token_seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// How long (ms) claims stay paused by a processor's rate limit; 0 when they are not.
    fn rate_limited_for(&self, now: u64) -> u64 {
        self.limit_until.load(Ordering::Relaxed).saturating_sub(now)
    }

    fn keep_for(&self, job: &Job, completed: bool) -> KeepJobs {
        let (own, default) = if completed {
            (job.opts.remove_on_complete, self.opts.remove_on_complete)
        } else {
            (job.opts.remove_on_fail, self.opts.remove_on_fail)
        };
        own.or(default).unwrap_or(KeepJobs::ALL)
    }
}

/// The span of one attempt. Logs show `queue`, `job_id` and `attempt`. When spans are
/// exported ([`crate::telemetry::exporting`]), the `otel.*`, `messaging.*` and `bullmq.*`
/// fields make it the consumer span BullMQ's own worker would open (`process <queue>`, with
/// its attribute names and the OpenTelemetry messaging conventions), continuing the
/// producer's trace from the job's `tm` option; otherwise they stay empty, as the log layer
/// would format them for every job only to leave them out of the lines it writes.
fn job_span(queue: &str, worker_name: Option<&str>, job: &Job) -> tracing::Span {
    use tracing::field::Empty;
    let span = tracing::info_span!("job", queue = %queue, job_id = %job.id,
        attempt = job.attempts_made + 1,
        "otel.name" = Empty, "otel.kind" = Empty,
        "messaging.system" = Empty, "messaging.operation" = Empty,
        "messaging.destination.name" = Empty, "messaging.message.id" = Empty,
        "bullmq.queue.name" = Empty, "bullmq.queue.operation" = Empty,
        "bullmq.job.id" = Empty, "bullmq.job.name" = Empty,
        "bullmq.job.attempts.made" = Empty, "bullmq.worker.name" = Empty);
    if !crate::telemetry::exporting() {
        return span;
    }
    span.record("otel.name", format!("process {queue}"));
    span.record("otel.kind", "consumer");
    span.record("messaging.system", "bullmq");
    span.record("messaging.operation", "process");
    span.record("messaging.destination.name", queue);
    span.record("messaging.message.id", job.id.as_str());
    span.record("bullmq.queue.name", queue);
    span.record("bullmq.queue.operation", "process");
    span.record("bullmq.job.id", job.id.as_str());
    span.record("bullmq.job.name", job.name.as_str());
    span.record("bullmq.job.attempts.made", i64::from(job.attempts_made));
    span.record("bullmq.worker.name", worker_name.unwrap_or_default());
    if let Some(carrier) = &job.opts.trace_context {
        crate::telemetry::continue_trace(&span, carrier);
    }
    span
}

/// Processes `job` and, through fetch-next, every job its finish call hands back, until one
/// finish returns no job.
async fn run_slot(inner: &Arc<Inner>, mut job: Job, claim: ClaimArgs) {
    loop {
        let span = job_span(&inner.opts.queue, inner.opts.name.as_deref(), &job);
        let started = std::time::Instant::now();
        let result = {
            use tracing::Instrument;
            span.in_scope(|| tracing::debug!(name = %job.name, "job claimed"));
            if job.repeat_job_key.is_some() {
                // As a Node worker does: the next iteration exists before this one runs.
                let mut con = inner.con.clone();
                super::scheduler::schedule_next(
                    &mut con,
                    &inner.keys,
                    &job,
                    inner.opts.compat,
                    now_ms,
                )
                .instrument(span.clone())
                .await;
            }
            attempt(inner, &job, &claim.token)
                .instrument(span.clone())
                .await
        };
        let Some(result) = result else {
            // Aborted at shutdown: the lock stays tracked so the job is handed back.
            return;
        };
        let next = {
            use tracing::Instrument;
            finish(inner, &job, result, &claim, started.elapsed())
                .instrument(span)
                .await
        };
        inner.locks.untrack(&job.id);
        match next {
            Some(next_job) => {
                inner.locks.track(&next_job.id, &claim.token);
                job = next_job;
            }
            None => return,
        }
    }
}

/// Runs one attempt of `job`, held with `token`. `None` when the attempt was aborted at
/// shutdown.
async fn attempt(inner: &Arc<Inner>, job: &Job, token: &str) -> Option<Result<Json, ProcessError>> {
    if let Some(reason) = &job.deferred_failure {
        return Some(Err(ProcessError::permanent(reason.clone())));
    }
    if let Some(reason) = &job.data_error {
        return Some(Err(ProcessError::permanent(reason.clone())));
    }
    let ctx = JobContext {
        id: job.id.clone(),
        name: job.name.clone(),
        data: job.data.clone(),
        attempts_made: job.attempts_made,
        attempts_started: job.attempts_started,
        attempts: job.opts.attempts,
        handle: JobHandle {
            keys: inner.keys.clone(),
            con: inner.con.clone(),
            id: job.id.clone(),
            keep_logs: job.opts.keep_logs,
            token: token.to_string(),
            locks: inner.locks.clone(),
        },
    };
    let work = AssertUnwindSafe(inner.processor.process(ctx)).catch_unwind();
    tokio::select! {
        _ = inner.abort_jobs.cancelled() => None,
        res = work => Some(match res {
            Ok(r) => r,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                tracing::error!(job_id = %job.id, panic = %what, "processor panicked");
                Err(ProcessError::retryable(format!("processor panicked: {what}")))
            }
        }),
    }
}

/// How long a [`Disposition::Retried`] attempt waits before the job runs again: 0 is at once
/// (back to `wait`), more is through `delayed`. `Err` when the delay cannot be computed (a
/// backoff type with no strategy): the attempt then cannot be ended, and the job is left
/// active with its lock no longer renewed so stalled recovery takes it, as a Node worker does
/// when its backoff lookup throws.
fn retry_delay(job: &Job) -> Result<u64, UnknownBackoff> {
    match &job.opts.backoff {
        None => Ok(0),
        Some(b) => b
            .delay_ms(job.attempts_made + 1)
            .ok_or_else(|| UnknownBackoff {
                kind: b.kind().to_string(),
            }),
    }
}

/// What `result` makes of `job`'s attempt, decided once: [`finish`] acts on it and the
/// observers are told it.
fn disposition(job: &Job, result: &Result<Json, ProcessError>) -> Disposition {
    Disposition::of(
        result.as_ref().map(|_| ()),
        job.attempts_made,
        job.opts.attempts,
    )
}

/// A backoff type the worker has no strategy for (there is no custom `backoffStrategy` here);
/// its text is Node's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "Unknown backoff strategy {kind}. If a custom backoff strategy is used, specify it when the queue is created."
)]
struct UnknownBackoff {
    /// The job's `opts.backoff.type`.
    kind: String,
}

/// The message a Node worker fails an attempt with when Redis refuses its completion for a
/// reason other than a lost lock, and whether that failure may be retried (a failed child is
/// an `UnrecoverableError` there). `None` for codes a completion never gets.
fn refused_completion(code: ScriptCode, job_id: &str) -> Option<ProcessError> {
    let command = "moveToFinished";
    match code {
        ScriptCode::PendingChildren => Some(ProcessError::retryable(format!(
            "Job {job_id} has pending dependencies. {command}"
        ))),
        ScriptCode::FailedChildren => Some(ProcessError::permanent(format!(
            "Cannot complete job {job_id} because it has at least one failed child. {command}"
        ))),
        ScriptCode::JobMissing => Some(ProcessError::retryable(format!(
            "Missing key for job {job_id}. {command}"
        ))),
        _ => None,
    }
}

fn stacktrace_json(job: &Job, err: &ProcessError) -> String {
    let mut traces = job.stacktrace.clone();
    traces.push(err.stack_entry());
    if let Some(limit) = job.opts.stack_trace_limit {
        let extra = traces.len().saturating_sub(limit);
        traces.drain(..extra);
    }
    serde_json::to_string(&traces).unwrap_or_else(|_| "[]".to_string())
}

/// A completion or final failure of `job`, for the [`FinishBatcher`].
fn finish_request(
    inner: &Inner,
    job: &Job,
    outcome: Outcome,
    fetch_next: bool,
    claim: &ClaimArgs,
) -> FinishRequest {
    let completed = matches!(outcome, Outcome::Completed { .. });
    FinishRequest {
        now_ms: now_ms(),
        job_id: job.id.clone(),
        outcome,
        keep: inner.keep_for(job, completed),
        attempts: job.opts.attempts,
        fetch_next,
        attempts_made: job.attempts_made,
        dedup_id: job.dedup_id.clone(),
        has_parent: job.has_parent,
        claim: claim.clone(),
    }
}

/// Ends the attempt in Redis. Returns the next job when fetch-next claimed one.
///
/// A completion Redis refuses for a reason other than a lost lock (pending or failed children,
/// a deleted job) becomes a failure of the attempt with Node's message, retried or failed like
/// any other, instead of leaving the job to stall.
async fn finish(
    inner: &Arc<Inner>,
    job: &Job,
    result: Result<Json, ProcessError>,
    claim: &ClaimArgs,
    took: Duration,
) -> Option<Job> {
    // Failure texts are capped before anything is stored (failedReason, stack trace, cache).
    let mut result = result.map_err(ProcessError::capped);
    let fetch_next = !inner.stop_claiming.is_cancelled() && inner.rate_limited_for(now_ms()) == 0;
    let keys = &inner.keys;
    let mut con = inner.con.clone();
    let mut pauses = FINISH_BACKOFF.pauses();
    if let Err(err) = &result
        && matches!(err.defer, Some(Defer::Delayed { .. }))
    {
        // Said once, before the move, so the log explains the wait however many tries the
        // move takes.
        let logged = AddLog {
            job_id: &job.id,
            line: &err.message,
            keep: job.opts.keep_logs,
        }
        .call(&mut con, keys)
        .await;
        if let Err(e) = logged {
            tracing::warn!(job_id = %job.id, error.message = %e, "could not log the deferral reason");
        }
    }
    let mut decided = disposition(job, &result);
    loop {
        // Only a hand-back for rate limiting sets it: how long the queue's limiter holds.
        let mut limiter_ttl_ms = 0;
        let res = match (&result, decided) {
            (Ok(value), _) => {
                let outcome = Outcome::Completed {
                    returnvalue: serde_json::to_string(value).unwrap_or_else(|_| "null".into()),
                };
                inner
                    .finisher
                    .finish(finish_request(inner, job, outcome, fetch_next, claim))
                    .await
            }
            (Err(_), Disposition::Deferred(Defer::Delayed { until_ms })) => {
                let now = now_ms();
                MoveToDelayed {
                    now_ms: now,
                    job_id: &job.id,
                    delay_ms: until_ms.saturating_sub(now),
                    failure: None,
                    fetch_next,
                    claim,
                }
                .call(&mut con, keys)
                .await
            }
            (Err(_), Disposition::Deferred(Defer::RateLimited)) => MoveJobFromActiveToWait {
                job_id: &job.id,
                token: &claim.token,
                compat: claim.compat,
            }
            .call(&mut con, keys)
            .await
            .map(|ttl| {
                if ttl > 0 {
                    inner
                        .limit_until
                        .fetch_max(now_ms() + ttl, Ordering::Relaxed);
                }
                limiter_ttl_ms = ttl;
                Claim::Empty
            }),
            (Err(_), Disposition::Deferred(Defer::WaitingChildren)) => {
                // The processor already moved the job (and released its lock); as a Node
                // worker after `WaitingChildrenError`, only claim the next job.
                if fetch_next {
                    MoveToActive {
                        now_ms: now_ms(),
                        claim,
                    }
                    .call(&mut con, keys)
                    .await
                } else {
                    Ok(Claim::Empty)
                }
            }
            (Err(err), Disposition::Retried) => {
                let stack = stacktrace_json(job, err);
                match retry_delay(job) {
                    Err(unknown) => {
                        tracing::error!(job_id = %job.id, error.message = %unknown, "cannot plan the retry; the job will stall and be recovered");
                        return None;
                    }
                    Ok(0) => RetryJob {
                        now_ms: now_ms(),
                        job_id: &job.id,
                        token: &claim.token,
                        lifo: job.opts.lifo,
                        reason: &err.message,
                        stacktrace: &stack,
                        compat: claim.compat,
                    }
                    .call(&mut con, keys)
                    .await
                    .map(|()| Claim::Empty),
                    Ok(ms) => {
                        MoveToDelayed {
                            now_ms: now_ms(),
                            job_id: &job.id,
                            delay_ms: ms,
                            failure: Some(AttemptFailure {
                                reason: &err.message,
                                stacktrace: &stack,
                            }),
                            fetch_next,
                            claim,
                        }
                        .call(&mut con, keys)
                        .await
                    }
                }
            }
            // `Disposition::Failed`; an error is never `Completed`, and failing for good is
            // the safe reading of anything else.
            (Err(err), _) => {
                let outcome = Outcome::Failed {
                    reason: err.message.clone(),
                    stacktrace: stacktrace_json(job, err),
                };
                inner
                    .finisher
                    .finish(finish_request(inner, job, outcome, fetch_next, claim))
                    .await
            }
        };
        match res {
            Ok(next) => {
                inner.record(job, &result, decided, limiter_ttl_ms, took);
                return match next {
                    Claim::Job(j) => Some(*j),
                    _ => None,
                };
            }
            Err(Error::Script { code, .. }) if code.is_lock_lost() => {
                tracing::warn!(job_id = %job.id, %code, "lock lost before finishing; leaving the job to its new owner");
                return None;
            }
            Err(Error::Script { code, .. }) if result.is_ok() => {
                let Some(failure) = refused_completion(code, &job.id) else {
                    tracing::error!(job_id = %job.id, %code, "completion refused; stalled recovery will take the job");
                    return None;
                };
                tracing::warn!(job_id = %job.id, %code, "completion refused; failing the attempt");
                result = Err(failure);
                decided = disposition(job, &result);
            }
            Err(e) if e.is_transient() => {
                if !inner.may_hold_lock(&job.id) {
                    tracing::error!(job_id = %job.id, error.message = %e, "redis unavailable until the lock expired; stalled recovery will take the job");
                    return None;
                }
                let wait = pauses.next_pause();
                tracing::warn!(job_id = %job.id, error.message = %e, retry_in_ms = wait.as_millis() as u64, "finishing failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                tracing::error!(job_id = %job.id, error.message = %e, "cannot finish the job; stalled recovery will take it");
                return None;
            }
        }
    }
}

impl Inner {
    /// Counts, logs and reports an attempt Redis has ended as `decided` (`limiter_ttl_ms`:
    /// how long the limiter holds after a rate-limited hand-back, for the log).
    fn record(
        &self,
        job: &Job,
        result: &Result<Json, ProcessError>,
        decided: Disposition,
        limiter_ttl_ms: u64,
        took: Duration,
    ) {
        let c = &self.counters;
        for o in &self.observers {
            o.attempt_finished(AttemptOutcome::of(decided), took);
        }
        match (decided, result) {
            (Disposition::Completed, Ok(value)) => {
                c.completed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(job_id = %job.id, "job completed");
                for o in &self.observers {
                    o.job_finished(&job.id, JobEnd::Completed(value));
                }
            }
            (Disposition::Failed, Err(err)) => {
                c.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(job_id = %job.id, error.message = %err.message, "job failed");
                for o in &self.observers {
                    o.job_finished(&job.id, JobEnd::Failed(&err.message));
                }
            }
            (Disposition::Deferred(Defer::RateLimited), _) => {
                c.released.fetch_add(1, Ordering::Relaxed);
                tracing::info!(job_id = %job.id, ttl_ms = limiter_ttl_ms, "queue rate limited by the processor; job handed back");
            }
            (Disposition::Deferred(Defer::Delayed { until_ms }), _) => {
                c.delayed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(job_id = %job.id, until_ms, "job deferred to delayed by its processor");
            }
            (Disposition::Deferred(Defer::WaitingChildren), _) => {
                tracing::info!(job_id = %job.id, "job waits for its children");
            }
            _ => {
                c.retried.fetch_add(1, Ordering::Relaxed);
                tracing::info!(job_id = %job.id, "attempt failed; job will be retried");
            }
        }
    }
}

/// Hands every still-tracked job back to the queue (shutdown after the timeout).
async fn release_all(inner: &Inner) {
    let mut con = inner.con.clone();
    for (id, token) in inner.locks.snapshot() {
        let handed_back = MoveJobFromActiveToWait {
            job_id: &id,
            token: &token,
            compat: inner.opts.compat,
        }
        .call(&mut con, &inner.keys)
        .await;
        match handed_back {
            Ok(_) => {
                inner.counters.released.fetch_add(1, Ordering::Relaxed);
                for o in &inner.observers {
                    o.attempt_finished(AttemptOutcome::Released, Duration::ZERO);
                }
                tracing::info!(job_id = %id, "job handed back to the queue");
            }
            Err(e) => {
                tracing::warn!(job_id = %id, error.message = %e, "could not hand the job back; stalled recovery will")
            }
        }
        inner.locks.untrack(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bullmq::job::{Backoff, JobOptions};

    /// The pauses [`finish`] sleeps between tries through a Redis outage: 100 ms, doubling,
    /// never more than 5 s (the loop itself stops when the lock may be gone).
    #[test]
    fn finishing_retries_after_100_ms_doubling_up_to_5_s() {
        let mut pauses = FINISH_BACKOFF.pauses();
        let got: Vec<_> = (0..9).map(|_| pauses.next_pause().as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }

    fn job(attempts: u32, made: u32, backoff: Option<Backoff>) -> Job {
        let mut j = Job::from_claim("1".into(), vec![]);
        j.attempts_made = made;
        j.opts = JobOptions {
            attempts,
            backoff,
            ..JobOptions::default()
        };
        j
    }

    /// The two questions [`finish`] asks of a failed attempt, in its order: what the attempt
    /// makes of the job, and, when retried, after how long (`Err`: cannot say, left to stall).
    fn plan(job: &Job, err: &ProcessError) -> (Disposition, Option<Result<u64, UnknownBackoff>>) {
        let decided = disposition(job, &Err(err.clone()));
        let delay = (decided == Disposition::Retried).then(|| retry_delay(job));
        (decided, delay)
    }

    #[test]
    fn retries_only_while_attempts_remain() {
        let e = ProcessError::retryable("x");
        let exp = Some(Backoff::Exponential {
            delay: 100,
            jitter: 0.0,
        });
        assert_eq!(
            plan(&job(3, 0, exp.clone()), &e),
            (Disposition::Retried, Some(Ok(100)))
        );
        assert_eq!(
            plan(&job(3, 1, exp.clone()), &e),
            (Disposition::Retried, Some(Ok(200)))
        );
        assert_eq!(plan(&job(3, 2, exp), &e), (Disposition::Failed, None));
        assert_eq!(
            plan(&job(2, 0, None), &e),
            (Disposition::Retried, Some(Ok(0)))
        );
        assert_eq!(plan(&job(0, 0, None), &e), (Disposition::Failed, None));
    }

    #[test]
    fn unknown_backoff_leaves_the_job_to_stall_with_nodes_message() {
        let e = ProcessError::retryable("x");
        let linear = Some(Backoff::Unknown("linear".into()));
        let (decided, delay) = plan(&job(3, 0, linear.clone()), &e);
        assert_eq!(decided, Disposition::Retried);
        assert_eq!(
            delay.map(|d| d.map_err(|e| e.to_string())),
            Some(Err(
                "Unknown backoff strategy linear. If a custom backoff strategy is used, \
                 specify it when the queue is created."
                    .into()
            ))
        );
        // The last attempt fails without looking the strategy up, as in Node.
        assert_eq!(plan(&job(3, 2, linear), &e), (Disposition::Failed, None));
    }

    #[test]
    fn refused_completions_fail_with_nodes_messages() {
        let pending = refused_completion(ScriptCode::PendingChildren, "7").unwrap();
        assert_eq!(
            pending.message,
            "Job 7 has pending dependencies. moveToFinished"
        );
        assert!(pending.retryable);
        let failed = refused_completion(ScriptCode::FailedChildren, "7").unwrap();
        assert!(!failed.retryable, "an UnrecoverableError in Node");
        assert!(refused_completion(ScriptCode::LockMismatch, "7").is_none());
    }

    #[test]
    fn permanent_errors_never_retry() {
        let e = ProcessError::permanent("bad branch");
        assert_eq!(plan(&job(5, 0, None), &e), (Disposition::Failed, None));
    }

    #[test]
    fn stack_traces_accumulate_within_the_limit() {
        let mut j = job(3, 1, None);
        j.stacktrace = vec!["a".into(), "b".into()];
        j.opts.stack_trace_limit = Some(2);
        let s: Vec<String> =
            serde_json::from_str(&stacktrace_json(&j, &ProcessError::retryable("c"))).unwrap();
        assert_eq!(s, vec!["b".to_string(), "Error: c".to_string()]);
        j.opts.stack_trace_limit = Some(0);
        assert_eq!(stacktrace_json(&j, &ProcessError::retryable("c")), "[]");
    }
}
