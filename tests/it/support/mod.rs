//! Test harness: a real `redis-server` per test binary run, unique queues per test, a job
//! adder shaped like BullMQ's `add`, and helpers to read the state back.

#![allow(dead_code)]

pub mod mongo;
pub mod proxy;
pub mod redis_server;
pub mod s3;
pub mod topology;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fetch_worker::bullmq::scripts::move_to_active::MoveToActive;
use fetch_worker::bullmq::scripts::{Claim, ClaimArgs};
use fetch_worker::bullmq::{Compat, Job, Processor, QueueKeys, RunSummary, Worker, WorkerOptions};
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};

pub use redis_server::RedisServer;

/// A queue name unique to this test process and call.
pub fn unique_queue(label: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A queue under test: its keys and a plain connection.
pub struct TestQueue {
    pub keys: QueueKeys,
    pub name: String,
    pub url: String,
    pub con: MultiplexedConnection,
}

/// What a test worker named `w1` claims with: `token`, 30 s locks, no limiter.
pub fn claim_args(token: &str) -> ClaimArgs {
    ClaimArgs {
        token: token.into(),
        lock: Duration::from_secs(30),
        worker_name: Some("w1".into()),
        limiter: None,
        compat: Compat::Auto,
    }
}

/// What a test job looks like when added.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    pub name: String,
    pub data: Value,
    pub opts: Value,
}

impl NewJob {
    pub fn new(data: Value) -> NewJob {
        NewJob {
            name: "fetch-job".into(),
            data,
            opts: json!({"attempts": 0}),
        }
    }
    pub fn opts(mut self, opts: Value) -> NewJob {
        self.opts = opts;
        self
    }
}

impl TestQueue {
    /// Claims the next job at `now` (ms) as a worker holding `claim` would, through the
    /// worker's own `moveToActive`; panics unless a job was claimed.
    pub async fn claim_job(&mut self, claim: &ClaimArgs, now: u64) -> Job {
        let keys = self.keys.clone();
        let claimed = MoveToActive { now_ms: now, claim }
            .call(&mut self.con, &keys)
            .await
            .unwrap();
        match claimed {
            Claim::Job(j) => *j,
            other => panic!("expected a job, got {other:?}"),
        }
    }

    pub async fn new(server: &RedisServer, label: &str) -> TestQueue {
        let name = unique_queue(label);
        let url = server.url(1);
        let client = redis::Client::open(url.as_str()).unwrap();
        let con = client.get_multiplexed_async_connection().await.unwrap();
        TestQueue {
            keys: QueueKeys::new("bull", &name),
            name,
            url,
            con,
        }
    }

    pub fn options(&self) -> WorkerOptions {
        let mut o = WorkerOptions::new("bull", self.name.clone());
        o.drain_delay = Duration::from_millis(200);
        o.until_drained = true;
        o
    }

    /// Adds a job the way BullMQ's `addStandardJob` / `addDelayedJob` / `addPrioritizedJob`
    /// leave Redis, and returns its id.
    pub async fn add(&mut self, job: NewJob) -> String {
        let k = &self.keys;
        let id: u64 = redis::cmd("INCR")
            .arg(&k.id)
            .query_async(&mut self.con)
            .await
            .unwrap();
        let id = id.to_string();
        let now = now_ms();
        let delay = job.opts.get("delay").and_then(Value::as_u64).unwrap_or(0);
        let priority = job
            .opts
            .get("priority")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let lifo = job
            .opts
            .get("lifo")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut p = redis::pipe();
        p.atomic()
            .hset_multiple(
                k.job(&id),
                &[
                    ("name", job.name.clone()),
                    ("data", job.data.to_string()),
                    ("opts", job.opts.to_string()),
                    ("timestamp", now.to_string()),
                    ("delay", delay.to_string()),
                    ("priority", priority.to_string()),
                ],
            )
            .ignore();
        p.cmd("XADD")
            .arg(&k.events)
            .arg("*")
            .arg("event")
            .arg("added")
            .arg("jobId")
            .arg(&id)
            .arg("name")
            .arg(&job.name)
            .ignore();
        if delay > 0 {
            let due = now + delay;
            p.zadd(&k.delayed, &id, due * 4096).ignore();
            p.cmd("XADD")
                .arg(&k.events)
                .arg("*")
                .arg("event")
                .arg("delayed")
                .arg("jobId")
                .arg(&id)
                .arg("delay")
                .arg(due)
                .ignore();
            p.zadd(&k.marker, "1", due as f64).ignore();
        } else {
            let paused: bool = redis::cmd("HEXISTS")
                .arg(&k.meta)
                .arg("paused")
                .query_async(&mut self.con)
                .await
                .unwrap();
            let list = if paused { &k.paused } else { &k.wait };
            if priority > 0 {
                let pc: u64 = redis::cmd("INCR")
                    .arg(&k.pc)
                    .query_async(&mut self.con)
                    .await
                    .unwrap();
                p.zadd(&k.prioritized, &id, priority * (1u64 << 32) + pc)
                    .ignore();
            } else if lifo {
                p.rpush(list, &id).ignore();
            } else {
                p.lpush(list, &id).ignore();
            }
            if !paused {
                p.zadd(&k.marker, "0", 0).ignore();
            }
            p.cmd("XADD")
                .arg(&k.events)
                .arg("*")
                .arg("event")
                .arg("waiting")
                .arg("jobId")
                .arg(&id)
                .ignore();
        }
        let _: () = p.query_async(&mut self.con).await.unwrap();
        id
    }

    /// Sets a field of the queue's meta hash, as a Node `Queue` does (`paused`,
    /// `concurrency`, ...).
    pub async fn set_meta(&mut self, field: &str, value: impl redis::ToRedisArgs) {
        let _: () = redis::cmd("HSET")
            .arg(&self.keys.meta)
            .arg(field)
            .arg(value)
            .query_async(&mut self.con)
            .await
            .unwrap();
    }

    pub async fn hget(&mut self, id: &str, field: &str) -> Option<String> {
        redis::cmd("HGET")
            .arg(self.keys.job(id))
            .arg(field)
            .query_async(&mut self.con)
            .await
            .unwrap()
    }

    pub async fn exists(&mut self, key: &str) -> bool {
        redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut self.con)
            .await
            .unwrap()
    }

    pub async fn zcard(&mut self, key: &str) -> u64 {
        redis::cmd("ZCARD")
            .arg(key)
            .query_async(&mut self.con)
            .await
            .unwrap()
    }

    pub async fn llen(&mut self, key: &str) -> u64 {
        redis::cmd("LLEN")
            .arg(key)
            .query_async(&mut self.con)
            .await
            .unwrap()
    }

    pub async fn zrange(&mut self, key: &str) -> Vec<String> {
        redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.con)
            .await
            .unwrap()
    }

    pub async fn lrange(&mut self, key: &str) -> Vec<String> {
        redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.con)
            .await
            .unwrap()
    }

    /// Every event entry as (name, fields).
    pub async fn events(&mut self) -> Vec<(String, Vec<(String, String)>)> {
        let raw: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(&self.keys.events)
            .arg("-")
            .arg("+")
            .query_async(&mut self.con)
            .await
            .unwrap();
        raw.into_iter()
            .map(|(_, kv)| {
                let mut pairs: Vec<(String, String)> = kv
                    .chunks(2)
                    .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
                    .collect();
                let name = pairs.remove(0).1;
                (name, pairs)
            })
            .collect()
    }

    /// The names of events about `id`, in order.
    pub async fn events_of(&mut self, id: &str) -> Vec<String> {
        self.events()
            .await
            .into_iter()
            .filter(|(_, f)| f.iter().any(|(k, v)| k == "jobId" && v == id))
            .map(|(n, _)| n)
            .collect()
    }

    /// Runs a worker until the queue is drained (with a 30 s safety bound).
    pub async fn drain(&self, opts: WorkerOptions, processor: Arc<dyn Processor>) -> RunSummary {
        let worker = Worker::connect(&self.url, opts, processor).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), worker.run(std::future::pending()))
            .await
            .expect("worker did not drain within 30 s")
            .unwrap()
    }
}

/// The worker's own connection type to `url` (plain, no TLS files).
pub async fn redis_conn(url: &str) -> fetch_worker::redis_conn::RedisConn {
    use fetch_worker::redis_conn::{RedisConn, RedisTarget, TlsFiles};
    let target = RedisTarget::parse(url, &TlsFiles::default()).unwrap();
    RedisConn::connect(&target, "test").await.unwrap()
}

pub fn now_ms() -> u64 {
    fetch_worker::bullmq::clock::now_ms()
}

/// Polls `check` every 20 ms until it holds, failing after `secs` seconds with `what`.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {secs} s waiting for: {what}");
}

/// A worker running in the background until [`Running::stop`].
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    run: tokio::task::JoinHandle<Result<RunSummary, fetch_worker::bullmq::Error>>,
}

impl Running {
    /// Connects a worker and runs it until stopped.
    pub async fn start(
        url: &str,
        opts: WorkerOptions,
        processor: Arc<dyn Processor>,
        results: Option<fetch_worker::app_cache::ResultCache>,
    ) -> Running {
        let mut worker = Worker::connect(url, opts, processor).await.unwrap();
        if let Some(results) = results {
            worker = worker.with_observer(Arc::new(results));
        }
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(worker.run(async {
            let _ = rx.await;
        }));
        Running { stop, run }
    }

    /// Signals shutdown and waits (10 s at most) for the worker to stop.
    pub async fn stop(self) -> RunSummary {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.run)
            .await
            .expect("worker did not stop within 10 s")
            .unwrap()
            .unwrap()
    }
}

/// Polls until `command key` (`LLEN`, `ZCARD`, …) answers `n`, failing after `secs` with `what`.
pub async fn wait_count(
    con: &MultiplexedConnection,
    command: &str,
    key: &str,
    n: u64,
    secs: u64,
    what: &str,
) {
    eventually(secs, what, || {
        let mut con = con.clone();
        async move {
            redis::cmd(command)
                .arg(key)
                .query_async::<u64>(&mut con)
                .await
                .unwrap_or(0)
                == n
        }
    })
    .await;
}
