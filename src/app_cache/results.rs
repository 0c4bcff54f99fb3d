//! Job results in the app's cache database (Redis db 0 by default).
//!
//! These are the app's keys, not BullMQ's: the worker only reports each job's end to its
//! observers ([`Observer::job_finished`]), and [`ResultCache`] is the observer that turns it
//! into a key. On a job's final outcome it writes `fetch-worker:result:<queue>:<jobId>` =
//! `{"status":"completed","result":…}` or `{"status":"failed","error":"…"}` with a TTL, so the
//! app can answer "how did job X end" without touching the queue database.
//!
//! Writes go through one background task that sends whatever has accumulated as a single
//! pipeline (at most 256 entries), so a busy worker costs the cache one round trip per burst,
//! not one per job. [`ResultCache::flush`] waits until everything stored so far is written.

use std::time::Duration;

use crate::bullmq::{AttemptOutcome, JobEnd, Observer};
use crate::redis_conn::RedisConn;
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// The most entries sent in one pipeline.
const BATCH: usize = 256;

/// How long one batch is retried while the cache database is unavailable (a restart, a
/// failover, `OOM`): after 100 ms, doubling up to 5 s, for at most this long; then the batch is
/// dropped with a warning (the queue keeps the outcomes; the cache entry is a convenience).
const RETRY_FOR: Duration = Duration::from_secs(60);

/// How long the writer waits for more entries before sending a small batch. Results become
/// visible at most this much later; in exchange a worker at concurrency 1 sends one pipeline
/// per few dozen jobs instead of one command per job.
const LINGER: Duration = Duration::from_millis(2);

/// A cache entry's text: `{"status":"completed","result":…}` or `{"status":"failed","error":…}`.
#[derive(serde::Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
enum Body<'a> {
    Completed { result: &'a Value },
    Failed { error: &'a str },
}

enum Message {
    Store(String, String),
    Flush(oneshot::Sender<()>),
}

/// Writes final outcomes into the cache database. Cheap to clone.
#[derive(Clone)]
pub struct ResultCache {
    tx: mpsc::UnboundedSender<Message>,
    queue: String,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("queue", &self.queue)
            .finish()
    }
}

impl ResultCache {
    /// A cache writer for `queue`, keeping results for `ttl`. Spawns its writer task, so it
    /// must be called inside a tokio runtime.
    pub fn new(con: RedisConn, queue: &str, ttl: Duration) -> ResultCache {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_results(con, rx, ttl.as_secs().max(1)));
        ResultCache {
            tx,
            queue: queue.to_string(),
        }
    }

    /// The key a job's result is stored under.
    pub fn key(queue: &str, job_id: &str) -> String {
        format!("fetch-worker:result:{queue}:{job_id}")
    }

    /// Queues a job's final outcome for writing. Failures to write are logged, not returned:
    /// the queue state is authoritative and a missing cache entry only costs the app a lookup.
    pub fn store(&self, job_id: &str, outcome: Result<&Value, &str>) {
        let body = match outcome {
            Ok(result) => Body::Completed { result },
            Err(error) => Body::Failed { error },
        };
        // Written straight from the borrowed result: no copy of it as a new `Value` first.
        let Ok(body) = serde_json::to_string(&body) else {
            return;
        };
        let _ = self
            .tx
            .send(Message::Store(Self::key(&self.queue, job_id), body));
    }

    /// Waits until every outcome stored before this call was written (or failed to be).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// Fed by the worker: every final outcome is queued for writing, and the worker's stop waits
/// for the writes ([`ResultCache::flush`]).
impl Observer for ResultCache {
    fn attempt_finished(&self, _outcome: AttemptOutcome, _duration: Duration) {}

    fn job_finished(&self, job_id: &str, end: JobEnd<'_>) {
        match end {
            JobEnd::Completed(value) => self.store(job_id, Ok(value)),
            JobEnd::Failed(reason) => self.store(job_id, Err(reason)),
        }
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(ResultCache::flush(self))
    }
}

/// Sends `pipe`, retrying transient errors (see [`RETRY_FOR`]).
async fn write_with_retries(con: &mut RedisConn, pipe: &redis::Pipeline) {
    let started = std::time::Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        let res: redis::RedisResult<()> = pipe.query_async(con).await;
        match res {
            Ok(()) => return,
            Err(e) if crate::redis_conn::is_transient(&e) && started.elapsed() < RETRY_FOR => {
                tracing::warn!(error.message = %e, retry_in_ms = wait.as_millis() as u64,
                    "could not write job results to the cache; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::warn!(error.message = %e, "could not write job results to the cache; giving up on them");
                return;
            }
        }
    }
}

async fn write_results(mut con: RedisConn, mut rx: mpsc::UnboundedReceiver<Message>, ttl: u64) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if batch.len() < BATCH && !matches!(batch.last(), Some(Message::Flush(_))) {
            tokio::time::sleep(LINGER).await;
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
        }
        // In a Redis Cluster the keys of one batch live in different slots, and a pipeline
        // goes to one node: there each key gets a pipeline of its own.
        let per_key = con.connector().target().is_cluster();
        let mut pipes = vec![redis::pipe()];
        let mut waiting = Vec::new();
        for message in batch.drain(..) {
            match message {
                Message::Store(key, body) => {
                    if per_key && !pipes.last().is_some_and(|p| p.is_empty()) {
                        pipes.push(redis::pipe());
                    }
                    if let Some(pipe) = pipes.last_mut() {
                        pipe.cmd("SET")
                            .arg(key)
                            .arg(body)
                            .arg("EX")
                            .arg(ttl)
                            .ignore();
                    }
                }
                Message::Flush(done) => waiting.push(done),
            }
        }
        for pipe in pipes.iter().filter(|p| !p.is_empty()) {
            write_with_retries(&mut con, pipe).await;
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}
