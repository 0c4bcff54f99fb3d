//! The worker runtime: claim loop, retries and backoff, deferred failures, progress, shutdown,
//! lock renewal, Redis restarts, panics.

use std::sync::Arc;
use std::time::Duration;

use fetch_worker::app_cache::ResultCache;
use fetch_worker::bullmq::{JobContext, ProcessError, Processor};
use fetch_worker::processors::{Fail, Noop, Sleep};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use crate::support::{NewJob, RedisServer, Running, TestQueue, eventually, wait_count};

/// Every job of a backlog is completed once, with its return value stored.
#[tokio::test]
async fn drains_a_backlog_with_concurrency() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "drain").await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(q.add(NewJob::new(json!({"i": i}))).await);
    }
    let mut opts = q.options();
    opts.concurrency = 8;
    let summary = q.drain(opts, Arc::new(Noop)).await;
    assert_eq!(summary.completed, 40);
    assert_eq!(q.zcard(&q.keys.completed.clone()).await, 40);
    assert_eq!(q.llen(&q.keys.active.clone()).await, 0);
    for (i, id) in ids.iter().enumerate() {
        let rv: Value = serde_json::from_str(&q.hget(id, "returnvalue").await.unwrap()).unwrap();
        assert_eq!(rv, json!({"processed": true, "echo": {"i": i}}));
        assert_eq!(
            q.events_of(id)
                .await
                .iter()
                .filter(|e| *e == "active")
                .count(),
            1
        );
    }
}

/// A failing job is retried with exponential backoff (delayed between attempts) until its
/// attempts are used up, then fails with retries-exhausted.
#[tokio::test]
async fn retries_with_backoff_until_exhausted() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "backoff").await;
    let id = q
        .add(
            NewJob::new(json!({"message": "remote said no"}))
                .opts(json!({"attempts": 3, "backoff": {"type": "exponential", "delay": 50}})),
        )
        .await;
    let summary = q.drain(q.options(), Arc::new(Fail)).await;
    assert_eq!((summary.failed, summary.retried), (1, 2));
    assert_eq!(q.hget(&id, "atm").await.as_deref(), Some("3"));
    assert_eq!(q.hget(&id, "ats").await.as_deref(), Some("3"));
    assert_eq!(
        q.hget(&id, "failedReason").await.as_deref(),
        Some("remote said no")
    );
    let stack: Vec<String> =
        serde_json::from_str(&q.hget(&id, "stacktrace").await.unwrap()).unwrap();
    assert_eq!(stack.len(), 3);
    let ev = q.events_of(&id).await;
    let expected = [
        "added",
        "waiting",
        "active",
        "delayed",
        "waiting",
        "active",
        "delayed",
        "waiting",
        "active",
        "failed",
        "retries-exhausted",
    ];
    assert_eq!(ev, expected);
    // The second delay doubled the first.
    let delays: Vec<String> = q
        .events()
        .await
        .into_iter()
        .filter(|(n, _)| n == "delayed")
        .filter_map(|(_, f)| f.into_iter().find(|(k, _)| k == "delay").map(|(_, v)| v))
        .collect();
    assert_eq!(delays.len(), 2);
}

/// A retry that succeeds completes the job; failedReason of the earlier attempt stays.
#[tokio::test]
async fn a_later_attempt_can_succeed() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "recover").await;
    let id = q
        .add(
            NewJob::new(json!({"succeedOnAttempt": 2}))
                .opts(json!({"attempts": 3, "backoff": {"type": "fixed", "delay": 20}})),
        )
        .await;
    let summary = q.drain(q.options(), Arc::new(Fail)).await;
    assert_eq!((summary.completed, summary.retried), (1, 1));
    assert_eq!(
        q.hget(&id, "returnvalue").await.as_deref(),
        Some(r#"{"succeededOnAttempt":2}"#)
    );
    assert_eq!(q.hget(&id, "atm").await.as_deref(), Some("2"));
    assert_eq!(
        q.hget(&id, "failedReason").await.as_deref(),
        Some("failed by request")
    );
}

/// A non-retryable error fails at once, attempts left or not, without retries-exhausted.
#[tokio::test]
async fn non_retryable_failure_fails_at_once() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "fatal").await;
    let id = q
        .add(
            NewJob::new(json!({"fatal": true, "message": "branch must be letters"}))
                .opts(json!({"attempts": 5, "backoff": 10})),
        )
        .await;
    let summary = q.drain(q.options(), Arc::new(Fail)).await;
    assert_eq!((summary.failed, summary.retried), (1, 0));
    assert_eq!(q.hget(&id, "atm").await.as_deref(), Some("1"));
    let stack: Vec<String> =
        serde_json::from_str(&q.hget(&id, "stacktrace").await.unwrap()).unwrap();
    assert!(stack[0].starts_with("UnrecoverableError: branch must be letters"));
    let ev = q.events_of(&id).await;
    assert_eq!(ev.last().map(String::as_str), Some("failed"));
    assert!(!ev.contains(&"retries-exhausted".to_string()));
}

/// Job data that is not JSON, and a deferred failure (`defa`), fail the job without running
/// the processor.
#[tokio::test]
async fn bad_data_and_deferred_failures_fail_without_running() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "defa").await;
    let bad = q
        .add(NewJob::new(json!({})).opts(json!({"attempts": 3})))
        .await;
    let _: () = redis::cmd("HSET")
        .arg(q.keys.job(&bad))
        .arg("data")
        .arg("{not json")
        .query_async(&mut q.con)
        .await
        .unwrap();
    let stalled = q
        .add(NewJob::new(json!({})).opts(json!({"attempts": 3})))
        .await;
    let _: () = redis::cmd("HSET")
        .arg(q.keys.job(&stalled))
        .arg("defa")
        .arg("job stalled more than allowable limit")
        .query_async(&mut q.con)
        .await
        .unwrap();
    let summary = q.drain(q.options(), Arc::new(Noop)).await;
    assert_eq!((summary.failed, summary.completed), (2, 0));
    assert!(
        q.hget(&bad, "failedReason")
            .await
            .unwrap()
            .starts_with("job data is not JSON")
    );
    assert_eq!(
        q.hget(&stalled, "failedReason").await.as_deref(),
        Some("job stalled more than allowable limit")
    );
    // defa is removed once the job is failed.
    assert_eq!(q.hget(&stalled, "defa").await, None);
}

/// Progress and log lines from the processor land on the job.
#[tokio::test]
async fn progress_and_logs_reach_the_job() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "sleep").await;
    let id = q.add(NewJob::new(json!({"ms": 50}))).await;
    q.drain(q.options(), Arc::new(Sleep)).await;
    assert_eq!(q.hget(&id, "progress").await.as_deref(), Some("100"));
    assert_eq!(
        q.lrange(&q.keys.logs(&id)).await,
        vec!["sleeping 50 ms", "slept 50 ms"]
    );
    let progress = q
        .events_of(&id)
        .await
        .iter()
        .filter(|e| *e == "progress")
        .count();
    assert_eq!(progress, 11);
}

/// Worker-level removeOnComplete applies to jobs without their own option; the job's own wins.
#[tokio::test]
async fn worker_default_retention_applies_when_the_job_has_none() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "wkeep").await;
    let plain = q.add(NewJob::new(json!({}))).await;
    let own = q
        .add(NewJob::new(json!({})).opts(json!({"removeOnComplete": false})))
        .await;
    let mut opts = q.options();
    opts.remove_on_complete = Some(fetch_worker::bullmq::KeepJobs {
        count: 0,
        age: None,
        limit: None,
    });
    q.drain(opts, Arc::new(Noop)).await;
    assert!(!q.exists(&q.keys.job(&plain)).await);
    assert!(q.exists(&q.keys.job(&own)).await);
}

/// A panicking processor fails the attempt; the worker lives on and finishes the next job.
#[tokio::test]
async fn a_panicking_processor_fails_the_attempt_not_the_worker() {
    struct Panics;
    impl Processor for Panics {
        fn process(&self, job: JobContext) -> BoxFuture<'static, Result<Value, ProcessError>> {
            async move {
                if job.data.get("panic").is_some() {
                    panic!("bad day");
                }
                Ok(json!("fine"))
            }
            .boxed()
        }
    }
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "panic").await;
    let bad = q.add(NewJob::new(json!({"panic": 1}))).await;
    let good = q.add(NewJob::new(json!({}))).await;
    let summary = q.drain(q.options(), Arc::new(Panics)).await;
    assert_eq!((summary.failed, summary.completed), (1, 1));
    assert_eq!(
        q.hget(&bad, "failedReason").await.as_deref(),
        Some("processor panicked: bad day")
    );
    assert_eq!(
        q.hget(&good, "returnvalue").await.as_deref(),
        Some("\"fine\"")
    );
}

/// Locks are renewed while a job runs longer than its lock duration, so a concurrent stalled
/// check never takes it away.
#[tokio::test]
async fn long_jobs_keep_their_lock() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "renew").await;
    let id = q.add(NewJob::new(json!({"ms": 1500}))).await;
    let mut opts = q.options();
    opts.lock_duration = Duration::from_millis(400);
    opts.stalled_interval = Duration::from_millis(100);
    let summary = q.drain(opts, Arc::new(Sleep)).await;
    assert_eq!(summary.completed, 1);
    assert_eq!(q.hget(&id, "stc").await, None);
    assert!(!q.events_of(&id).await.contains(&"stalled".to_string()));
}

/// On shutdown, a job that does not finish within the timeout is handed back to wait with its
/// attempt unused; a job that finishes in time completes.
#[tokio::test]
async fn shutdown_hands_back_unfinished_jobs() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "shutdown").await;
    let quick = q.add(NewJob::new(json!({"ms": 200}))).await;
    let slow = q.add(NewJob::new(json!({"ms": 60_000}))).await;
    let mut opts = q.options();
    opts.until_drained = false;
    opts.concurrency = 2;
    opts.shutdown_timeout = Duration::from_millis(800);
    let running = Running::start(&q.url, opts, Arc::new(Sleep), None).await;
    let mut probe = q.con.clone();
    wait_count(&probe, "LLEN", &q.keys.active, 2, 10, "both jobs active").await;
    let summary = running.stop().await;
    assert_eq!((summary.completed, summary.released), (1, 1));
    assert!(q.hget(&quick, "finishedOn").await.is_some());
    assert_eq!(q.lrange(&q.keys.wait.clone()).await, vec![slow.clone()]);
    assert_eq!(q.hget(&slow, "atm").await, None);
    let _: () = redis::cmd("PING").query_async(&mut probe).await.unwrap();
}

/// After Redis restarts mid-run the worker reconnects and completes jobs added afterwards.
#[tokio::test]
async fn survives_a_redis_restart() {
    let mut server = RedisServer::start();
    let mut q = TestQueue::new(&server, "restart").await;
    let before = q.add(NewJob::new(json!({}))).await;
    let mut opts = q.options();
    opts.until_drained = false;
    opts.drain_delay = Duration::from_millis(300);
    let running = Running::start(&q.url, opts, Arc::new(Noop), None).await;
    wait_count(
        &q.con,
        "ZCARD",
        &q.keys.completed,
        1,
        10,
        "first job completed",
    )
    .await;
    server.restart();
    // A fresh connection for the test side.
    let mut q = TestQueue {
        con: redis::Client::open(q.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap(),
        ..q
    };
    let after = q.add(NewJob::new(json!({}))).await;
    wait_count(
        &q.con,
        "ZCARD",
        &q.keys.completed,
        2,
        20,
        "job added after the restart completed",
    )
    .await;
    running.stop().await;
    assert!(q.hget(&before, "returnvalue").await.is_some());
    assert!(q.hget(&after, "returnvalue").await.is_some());
}

/// Final outcomes are written to the cache database with a TTL, and the blocking connection
/// carries Node's client name so dashboards count the worker.
#[tokio::test]
async fn results_reach_the_cache_and_the_worker_is_named() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "cache").await;
    let ok = q.add(NewJob::new(json!({"a": 1}))).await;
    let ko = q
        .add(NewJob::new(json!({"fatal": true, "message": "nope"})))
        .await;
    let cache_client = redis::Client::open(server.url(0)).unwrap();
    let cache = ResultCache::new(
        crate::support::redis_conn(&server.url(0)).await,
        &q.name,
        Duration::from_secs(600),
    );
    let mut opts = q.options();
    opts.until_drained = false;
    opts.name = Some("rust-1".into());
    struct Either;
    impl Processor for Either {
        fn process(&self, job: JobContext) -> BoxFuture<'static, Result<Value, ProcessError>> {
            if job.data.get("fatal").is_some() {
                Fail.process(job)
            } else {
                Noop.process(job)
            }
        }
    }
    let running = Running::start(&q.url, opts, Arc::new(Either), Some(cache)).await;
    let mut c0 = cache_client
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key_ok = ResultCache::key(&q.name, &ok);
    let key_ko = ResultCache::key(&q.name, &ko);
    let probe = c0.clone();
    let k2 = key_ko.clone();
    eventually(10, "both results cached", || {
        let mut con = probe.clone();
        let (a, b) = (key_ok.clone(), k2.clone());
        async move {
            redis::cmd("EXISTS")
                .arg(a)
                .arg(b)
                .query_async::<u64>(&mut con)
                .await
                .unwrap()
                == 2
        }
    })
    .await;
    let v: String = redis::cmd("GET")
        .arg(ResultCache::key(&q.name, &ok))
        .query_async(&mut c0)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&v).unwrap(),
        json!({"status": "completed", "result": {"processed": true, "echo": {"a": 1}}})
    );
    let v: String = redis::cmd("GET")
        .arg(&key_ko)
        .query_async(&mut c0)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&v).unwrap(),
        json!({"status": "failed", "error": "nope"})
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key_ko)
        .query_async(&mut c0)
        .await
        .unwrap();
    assert!(ttl > 500 && ttl <= 600);
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut q.con)
        .await
        .unwrap();
    let expected = fetch_worker::bullmq::QueueKeys::client_name("bull", &q.name, Some("rust-1"));
    assert!(list.contains(&format!("name={expected} ")), "{list}");
    running.stop().await;
}

/// The binary writes each result into the cache database with `RESULT_TTL_SECONDS` as its TTL,
/// and writes none when it is 0 (for an app that never reads them); the jobs complete alike.
#[tokio::test]
async fn result_ttl_zero_writes_no_results() {
    let server = RedisServer::start();
    let mut db0 = redis::Client::open(server.url(0))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for (ttl, label) in [("0", "no-results"), ("900", "results")] {
        let mut q = TestQueue::new(&server, label).await;
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(q.add(NewJob::new(json!({"i": i}))).await);
        }
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_fetch-worker"))
            .args(["run", "--processor", "noop", "--until-drained"])
            .env("REDIS_JOB_URL", &q.url)
            .env("REDIS_CACHE_URL", server.url(0))
            .env("QUEUE_NAME", &q.name)
            .env("RESULT_TTL_SECONDS", ttl)
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("DRAIN_DELAY_MS", "200")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "RESULT_TTL_SECONDS={ttl}: {status}");
        assert_eq!(q.zcard(&q.keys.completed.clone()).await, 3, "{ttl}");
        for id in &ids {
            let left: i64 = redis::cmd("TTL")
                .arg(ResultCache::key(&q.name, id))
                .query_async(&mut db0)
                .await
                .unwrap();
            if ttl == "0" {
                assert_eq!(left, -2, "job {id}'s result was written");
            } else {
                assert!(left > 800 && left <= 900, "job {id}: TTL {left}");
            }
        }
    }
}

/// A job that ends while the claim loop waits on the marker makes the loop leave that wait;
/// the `BZPOPMIN` it sent stays blocked in Redis. The next job's marker must still wake the
/// worker at once: the abandoned call must not swallow it (it did, and the job then waited
/// for the full drain delay, 5 s here).
#[tokio::test]
async fn a_job_added_after_another_ended_mid_wait_is_claimed_at_once() {
    let redis = RedisServer::start();
    let mut q = TestQueue::new(&redis, "midwait").await;
    let mut opts = q.options();
    opts.concurrency = 2;
    opts.drain_delay = Duration::from_secs(5);
    opts.until_drained = false;
    let running = Running::start(&q.url, opts, Arc::new(Sleep), None).await;
    let long = q.add(NewJob::new(json!({"ms": 1200}))).await;
    // The worker claims it, finds nothing more and blocks on the marker; the job ends at
    // about 1.2 s, which abandons that wait.
    wait_count(
        &q.con,
        "ZCARD",
        &q.keys.completed,
        1,
        10,
        "the long job done",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let next = q.add(NewJob::new(json!({"ms": 0}))).await;
    wait_count(
        &q.con,
        "ZCARD",
        &q.keys.completed,
        2,
        10,
        "the next job done",
    )
    .await;
    running.stop().await;
    let added: u64 = q.hget(&next, "timestamp").await.unwrap().parse().unwrap();
    let started: u64 = q.hget(&next, "processedOn").await.unwrap().parse().unwrap();
    assert!(
        started - added < 1000,
        "picked up {} ms after it was added (the drain delay is 5000)",
        started - added
    );
    assert!(q.hget(&long, "finishedOn").await.is_some());
}
