//! The operations endpoint and structured logs of the real binary: `/health` follows Redis and
//! MongoDB, `/metrics` counts outcomes, JSON log lines carry the job's and the day's fields.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::mongo::TestMongo;
use crate::support::{NewJob, RedisServer, TestQueue, eventually};

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
/// counts completed and failed jobs; JSON logs carry job_id, branch, pos and date.
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
