//! The operations endpoint and structured logs of the real binary: `/health` follows Redis and
//! MongoDB, `/metrics` counts outcomes, JSON log lines carry the job's and the day's fields.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::mongo::TestMongo;
use crate::support::{NewJob, RedisServer, TestQueue, eventually, now_ms};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get(url: &str) -> Option<(u16, String)> {
    let resp = reqwest::get(url).await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

/// `/health` is 200 while Redis and MongoDB answer and 503 when Redis is gone; `/metrics`
/// counts completed and failed jobs, days per branch, steps, monitor entries and the queue; JSON logs carry job_id, branch, pos and date.
#[tokio::test]
async fn health_metrics_and_json_logs() {
    let mut server = RedisServer::start();
    let mongo = TestMongo::start();
    let mut q = TestQueue::new(&server, "ops").await;
    // A day that the (absent) POS server cannot list: the attempt fails and logs with its day.
    let id = q
        .add(NewJob::new(
            json!({"branch": "BMC", "pos": 1, "date": "2026-02-09"}),
        ))
        .await;
    let bad = q
        .add(NewJob::new(
            json!({"branch": "../x", "pos": 1, "date": "2026-02-09"}),
        ))
        .await;
    let port = free_port();
    let dead_pos = format!("http://127.0.0.1:{}/", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_fetch-worker"))
        .arg("run")
        .env("REDIS_JOB_URL", &q.url)
        .env("REDIS_CACHE_URL", server.url(0))
        .env("QUEUE_NAME", &q.name)
        .env(
            "MONGO_URI",
            format!("{}/{}", mongo.uri, TestMongo::unique_db("ops")),
        )
        .env("POS_LIST_URL", format!("{dead_pos}fetch_list2.php"))
        .env("POS_FILE_BASE_URL", &dead_pos)
        .env("POS_FETCH_ATTEMPTS", "1")
        .env(
            "RAW_STORAGE_PATH",
            std::env::temp_dir().join(format!("fw-ops-{port}")),
        )
        .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "fetch_worker=info")
        .env("DRAIN_DELAY_MS", "200")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let base = format!("http://127.0.0.1:{port}");
    let metrics_url = format!("{base}/metrics");
    eventually(30, "both jobs failed and counted", || {
        let url = metrics_url.clone();
        async move {
            matches!(get(&url).await, Some((200, body)) if body.contains("fetch_worker_jobs_total{outcome=\"failed\"} 2"))
        }
    })
    .await;
    // The day outcomes per branch (bad job data under `invalid`), the step that ran, the
    // monitor entry of the failed day, and the queue's state read from Redis.
    // The queue's state is sampled at most once a second: the sample taken while the last job
    // was finishing may still be served.
    eventually(10, "the queue sample shows both failed jobs", || {
        let url = metrics_url.clone();
        async move {
            matches!(get(&url).await, Some((200, body)) if body.contains("fetch_worker_queue_jobs{state=\"failed\"} 2"))
        }
    })
    .await;
    let (_, scraped) = get(&metrics_url).await.unwrap();
    for (series, value) in [
        (
            r#"fetch_worker_days_total{branch="BMC",outcome="failed"}"#,
            1.0,
        ),
        (
            r#"fetch_worker_days_total{branch="invalid",outcome="failed"}"#,
            1.0,
        ),
        (
            r#"fetch_worker_step_duration_seconds_count{step="list"}"#,
            1.0,
        ),
        ("fetch_worker_monitor_entries_total", 1.0),
        (r#"fetch_worker_queue_jobs{state="failed"}"#, 2.0),
        (r#"fetch_worker_queue_jobs{state="wait"}"#, 0.0),
        ("fetch_worker_queue_up", 1.0),
    ] {
        assert_eq!(
            sample(&scraped, series),
            Some(value),
            "{series} in\n{scraped}"
        );
    }
    let (status, body) = get(&format!("{base}/health")).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": "ok", "redis": "ok", "mongo": "ok", "shuttingDown": false})
    );
    assert!(
        q.hget(&id, "failedReason")
            .await
            .unwrap()
            .starts_with("listing failed")
    );
    assert!(
        q.hget(&bad, "failedReason")
            .await
            .unwrap()
            .starts_with("invalid job data")
    );

    server.stop_for_test();
    let health = format!("{base}/health");
    eventually(10, "health turns 503 without Redis", || {
        let url = health.clone();
        async move { matches!(get(&url).await, Some((503, _))) }
    })
    .await;

    // SIGTERM, so the worker shuts down cleanly.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let lines = lines.join().unwrap();
    let job_line = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("listing files"))
        })
        .unwrap_or_else(|| panic!("no listing line in {lines:?}"));
    let spans = job_line["spans"].as_array().unwrap();
    let fields: serde_json::Map<String, Value> = spans
        .iter()
        .flat_map(|s| s.as_object().unwrap().clone())
        .collect();
    assert_eq!(fields["job_id"], json!(id));
    // Strings as themselves, not as Rust or JSON quoted text (issue 15).
    assert_eq!(fields["branch"], json!("BMC"));
    assert_eq!(fields["date"], json!("2026-02-09"));
    assert_eq!(fields["pos"], json!("1"));
    // No line carries a Rust debug rendering (`Some(..)`, `RunSummary { .. }`).
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        let text = v.to_string();
        assert!(
            !text.contains("Some(") && !text.contains("None") && !text.contains(" { "),
            "debug text in a JSON log line: {line}"
        );
    }
    let stopped = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "worker stopped")
        .unwrap_or_else(|| panic!("no 'worker stopped' line in {lines:?}"));
    assert_eq!(stopped["failed"], json!(2));
    assert!(fields.contains_key("pos"));
}

/// One value of the Prometheus text `body`: the sample line that starts with `series ` (name
/// and labels exactly as exported).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// `/metrics` reads the queue's state from Redis: jobs in every state (made by a real drain,
/// the add helper's BullMQ layout, `RPOPLPUSH wait active` as a claim does, a parent parked
/// as a FlowProducer leaves it, and BullMQ 5's `paused` list), and the age of the oldest job
/// that could run. With Redis gone the scrape still answers, with `queue_up 0` and no stale
/// counts.
#[tokio::test]
async fn metrics_sample_every_queue_state_and_survive_redis_going_away() {
    use fetch_worker::metrics::Metrics;
    use fetch_worker::queue_metrics::QueueSampler;
    use std::sync::Arc;

    let mut server = RedisServer::start();
    let mut q = TestQueue::new(&server, "qmetrics").await;
    // Two completed and one failed, by a worker.
    for data in [
        json!({"succeedOnAttempt": 1}),
        json!({"succeedOnAttempt": 1}),
        json!({"fatal": true}),
    ] {
        q.add(NewJob::new(data)).await;
    }
    q.drain(q.options(), Arc::new(fetch_worker::processors::Fail))
        .await;
    // One active: claimed the way moveToActive takes it.
    q.add(NewJob::new(json!({"n": "active"}))).await;
    let mut con = q.con.clone();
    let _: String = redis::cmd("RPOPLPUSH")
        .arg(&q.keys.wait)
        .arg(&q.keys.active)
        .query_async(&mut con)
        .await
        .unwrap();
    // Three waiting; the first (oldest, at the right end) was created 60 s ago.
    let oldest = q.add(NewJob::new(json!({"n": 1}))).await;
    let _: () = redis::cmd("HSET")
        .arg(q.keys.job(&oldest))
        .arg("timestamp")
        .arg(now_ms() - 60_000)
        .query_async(&mut con)
        .await
        .unwrap();
    q.add(NewJob::new(json!({"n": 2}))).await;
    q.add(NewJob::new(json!({"n": 3}))).await;
    // Two prioritized (younger than the oldest waiting job), one delayed for a minute.
    q.add(NewJob::new(json!({})).opts(json!({"priority": 2})))
        .await;
    q.add(NewJob::new(json!({})).opts(json!({"priority": 1})))
        .await;
    q.add(NewJob::new(json!({})).opts(json!({"delay": 60_000})))
        .await;
    // A parent waiting for its children, and a job in BullMQ 5's `paused` list.
    let _: () = redis::pipe()
        .hset_multiple(
            q.keys.job("parent"),
            &[("timestamp", now_ms().to_string()), ("data", "{}".into())],
        )
        .ignore()
        .zadd(&q.keys.waiting_children, "parent", now_ms())
        .ignore()
        .lpush(&q.keys.paused, "nosuchjob")
        .ignore()
        .query_async(&mut con)
        .await
        .unwrap();

    let metrics = Arc::new(Metrics::new());
    let probe = crate::support::redis_conn(&q.url).await;
    metrics.watch_queue(QueueSampler::new(probe.clone(), q.keys.clone()));
    let port = free_port();
    let listener = fetch_worker::ops::bind(([127, 0, 0, 1], port).into())
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(fetch_worker::ops::serve(
        listener,
        fetch_worker::ops::Health {
            redis: probe,
            mongo: None,
            shutting_down: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        },
        metrics,
        stop.clone(),
    ));
    let url = format!("http://127.0.0.1:{port}/metrics");
    let (status, body) = get(&url).await.unwrap();
    assert_eq!(status, 200);
    for (state, n) in [
        ("wait", 3.0),
        ("active", 1.0),
        ("delayed", 1.0),
        ("prioritized", 2.0),
        ("waiting-children", 1.0),
        ("completed", 2.0),
        ("failed", 1.0),
        ("paused", 1.0),
    ] {
        assert_eq!(
            sample(
                &body,
                &format!("fetch_worker_queue_jobs{{state=\"{state}\"}}")
            ),
            Some(n),
            "{state} in\n{body}"
        );
    }
    let age = sample(&body, "fetch_worker_queue_oldest_waiting_age_seconds").unwrap();
    assert!((60.0..120.0).contains(&age), "age {age}");
    assert_eq!(sample(&body, "fetch_worker_queue_up"), Some(1.0));
    assert_eq!(
        sample(&body, "fetch_worker_queue_sample_errors_total"),
        Some(0.0)
    );

    // Redis gone: the scrape answers (the sample is bounded) and says so, once the cached
    // sample has expired.
    server.stop_for_test();
    let body = {
        let mut last = String::new();
        for _ in 0..50 {
            let (status, body) = get(&url).await.unwrap();
            assert_eq!(status, 200);
            if sample(&body, "fetch_worker_queue_up") == Some(0.0) {
                last = body;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        last
    };
    assert!(!body.is_empty(), "queue_up never turned 0");
    assert!(sample(&body, "fetch_worker_queue_sample_errors_total").unwrap() >= 1.0);
    assert!(!body.contains("fetch_worker_queue_jobs{"), "{body}");
    stop.cancel();
}
