//! Issue 11, "safe by default", against the real binary: planted credentials never surface,
//! redirects stay on the POS server's origin, a day's files and an attempt's time are bounded,
//! huge job data is never echoed, and a second signal exits at once.
//!
//! See: issue 11 (`issues show 11`).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use fetch_worker::fake_pos::{FakePos, Fault, FaultRule, Faults, Target};
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};

use crate::support::mongo::TestMongo;
use crate::support::{NewJob, RedisServer, TestQueue, eventually};

const PASSWORD: &str = "PosS3cret";
const TOKEN: &str = "T0KEN";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-samples/input")
}

/// Redis, MongoDB, a fake POS server over the legacy samples, raw storage, a queue.
struct Stack {
    redis: RedisServer,
    _mongo: TestMongo,
    mongo_uri: String,
    db_name: String,
    pos: FakePos,
    raw: tempfile::TempDir,
    queue: TestQueue,
}

/// A running worker process and its stderr, collected line by line as it comes.
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Option<JoinHandle<()>>,
}

impl Proc {
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (60 s at most), returning its exit code and stderr.
    fn wait(mut self) -> (Option<i32>, Vec<String>) {
        let mut waited = Duration::ZERO;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                waited < Duration::from_secs(60),
                "the worker did not exit within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
            waited += Duration::from_millis(20);
        };
        self.stderr.take().unwrap().join().unwrap();
        (status.code(), self.lines())
    }

    /// The stderr lines so far.
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Stack {
    async fn start(label: &str, faults: Vec<FaultRule>) -> Stack {
        let redis = RedisServer::start();
        let mongo = TestMongo::start();
        let db_name = TestMongo::unique_db(label);
        let pos = FakePos::start(
            samples(),
            "127.0.0.1:0".parse().unwrap(),
            Faults::with_rules(faults),
        )
        .await
        .unwrap();
        let queue = TestQueue::new(&redis, label).await;
        Stack {
            redis,
            mongo_uri: mongo.uri.clone(),
            _mongo: mongo,
            db_name,
            pos,
            raw: tempfile::tempdir().unwrap(),
            queue,
        }
    }

    /// The worker binary with this stack's settings, `extra` on top (later values win).
    fn spawn(&self, extra: &[(&str, String)]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fetch-worker"));
        cmd.arg("run")
            .env("REDIS_JOB_URL", &self.queue.url)
            .env("REDIS_CACHE_URL", self.redis.url(0))
            .env("QUEUE_NAME", &self.queue.name)
            .env("MONGO_URI", format!("{}/{}", self.mongo_uri, self.db_name))
            .env("POS_LIST_URL", self.pos.list_url())
            .env("POS_FILE_BASE_URL", self.pos.base_url())
            .env("RAW_STORAGE_PATH", self.raw.path())
            .env("POS_FETCH_ATTEMPTS", "2")
            .env("POS_FETCH_BACKOFF_MS", "10")
            .env("DRAIN_DELAY_MS", "200")
            .env("METRICS_ADDR", "")
            .env("RUST_LOG", "fetch_worker=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let err = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Proc {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    async fn wait_finished(&self, n: u64) {
        let k = self.queue.keys.clone();
        let con = self.queue.con.clone();
        eventually(90, "every job finished", || {
            let mut con = con.clone();
            let (done, failed) = (k.completed.clone(), k.failed.clone());
            async move {
                let (a, b): (u64, u64) = redis::pipe()
                    .zcard(done)
                    .zcard(failed)
                    .query_async(&mut con)
                    .await
                    .unwrap_or((0, 0));
                a + b == n
            }
        })
        .await;
    }

    async fn db(&self) -> mongodb::Database {
        mongodb::Client::with_uri_str(&self.mongo_uri)
            .await
            .unwrap()
            .database(&self.db_name)
    }

    async fn all(&self, collection: &str) -> Vec<Document> {
        self.db()
            .await
            .collection::<Document>(collection)
            .find(doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }

    /// Every document of every collection of the test database, as text.
    async fn mongo_text(&self) -> String {
        let names = self.db().await.list_collection_names().await.unwrap();
        let mut out = String::new();
        for name in names {
            for d in self.all(&name).await {
                out.push_str(&format!("{name}: {d}\n"));
            }
        }
        out
    }

    /// Every key and value of Redis databases 0 and 1 (strings, hashes, lists, sets, sorted
    /// sets, streams), as text.
    async fn redis_text(&self) -> String {
        let mut out = String::new();
        for db in [0u8, 1] {
            let client = redis::Client::open(self.redis.url(db)).unwrap();
            let mut con = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("*")
                .query_async(&mut con)
                .await
                .unwrap();
            for key in keys {
                let kind: String = redis::cmd("TYPE")
                    .arg(&key)
                    .query_async(&mut con)
                    .await
                    .unwrap();
                let mut cmd = match kind.as_str() {
                    "string" => redis::cmd("GET"),
                    "hash" => redis::cmd("HGETALL"),
                    "list" => {
                        let mut c = redis::cmd("LRANGE");
                        c.arg(&key).arg(0).arg(-1);
                        c
                    }
                    "set" => redis::cmd("SMEMBERS"),
                    "zset" => {
                        let mut c = redis::cmd("ZRANGE");
                        c.arg(&key).arg(0).arg(-1).arg("WITHSCORES");
                        c
                    }
                    "stream" => {
                        let mut c = redis::cmd("XRANGE");
                        c.arg(&key).arg("-").arg("+");
                        c
                    }
                    _ => continue,
                };
                if matches!(kind.as_str(), "string" | "hash" | "set") {
                    cmd.arg(&key);
                }
                let value: redis::Value = cmd.query_async(&mut con).await.unwrap();
                out.push_str(&format!("db{db} {key}: {}\n", flatten(&value)));
            }
        }
        out
    }
}

/// A Redis reply's text, every bulk string decoded.
fn flatten(value: &redis::Value) -> String {
    match value {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().map(flatten).collect::<Vec<_>>().join(" ")
        }
        redis::Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| format!("{} {}", flatten(k), flatten(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => format!("{other:?}"),
    }
}

fn assert_clean(surface: &str, text: &str) {
    for secret in [PASSWORD, TOKEN, "posuser"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into {surface}: {}",
            text.lines()
                .filter(|l| l.contains(secret))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

fn day(branch: &str, date: &str) -> Value {
    json!({"branch": branch, "pos": 1, "date": date})
}

/// With a password and a token in POS_LIST_URL and POS_FILE_BASE_URL, a failed listing (retried
/// in-process and by the queue), a download cut by resets and a completed day leave neither in
/// failedReason, stack traces, job logs, events, the db 0 result cache, monitorentries, file
/// records, stderr (at debug level), /metrics or /health.
#[tokio::test]
async fn r11_planted_pos_credentials_surface_nowhere() {
    let mut stack = Stack::start(
        "secrets",
        vec![
            // The first job's two attempts × two tries of the list call: request errors,
            // whose text names the URL, query included.
            FaultRule::new(Fault::Reset).on(Target::List).times(4),
            FaultRule::new(Fault::Reset)
                .on(Target::Download)
                .path("BMC_1_rd5000_2026-02-09"),
        ],
    )
    .await;
    let opts = json!({"attempts": 2, "backoff": {"type": "fixed", "delay": 50}});
    let listing = stack
        .queue
        .add(NewJob::new(day("BMC", "2025-10-08")).opts(opts.clone()))
        .await;
    let download = stack
        .queue
        .add(NewJob::new(day("BMC", "2026-02-09")).opts(json!({"attempts": 1})))
        .await;
    let fine = stack.queue.add(NewJob::new(day("GOA", "2026-02-09"))).await;

    let port = free_port();
    let list_url = stack
        .pos
        .list_url()
        .replace("http://", &format!("http://posuser:{PASSWORD}@"))
        + &format!("?token={TOKEN}");
    let base_url = stack
        .pos
        .base_url()
        .replace("http://", &format!("http://posuser:{PASSWORD}@"));
    let proc = stack.spawn(&[
        ("POS_LIST_URL", list_url),
        ("POS_FILE_BASE_URL", base_url),
        ("METRICS_ADDR", format!("127.0.0.1:{port}")),
    ]);
    stack.wait_finished(3).await;

    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("fetch_worker_jobs_total"), "{metrics}");
    let health = reqwest::get(format!("http://127.0.0.1:{port}/health/ready"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    proc.signal("TERM");
    let (_, stderr) = proc.wait();
    let stderr = stderr.join("\n");

    // The surfaces were reached: the failures name the server, redacted.
    let reason = stack.queue.hget(&listing, "failedReason").await.unwrap();
    assert!(
        reason.starts_with("listing failed: http://***@127.0.0.1:")
            && reason.contains("/fetch_list2.php?***: error sending request"),
        "{reason}"
    );
    let reason = stack.queue.hget(&download, "failedReason").await.unwrap();
    assert!(reason.contains("http://***@127.0.0.1:"), "{reason}");
    assert!(stack.queue.hget(&fine, "returnvalue").await.is_some());
    assert!(
        stderr.contains("transient fetch failure; retrying"),
        "the retry log was not reached: {stderr}"
    );
    let mongo = stack.mongo_text().await;
    assert!(mongo.contains("listing failed"), "{mongo}");
    let redis = stack.redis_text().await;
    assert!(redis.contains("fetch-worker:result:"), "no cache entry");

    assert_clean("redis (job hashes, logs, events, result cache)", &redis);
    assert_clean("mongodb (monitorentries, filerecords)", &mongo);
    assert_clean("stderr", &stderr);
    assert_clean("/metrics", &metrics);
    assert_clean("/health/ready", &health);
    // The fake server did receive the credentials (they are used, only never shown).
    assert!(stack.pos.count(Target::List) >= 4);
}

/// A bad POS URL setting is refused at start-up naming the setting, not the secret.
#[test]
fn r11_a_bad_url_setting_is_reported_without_credentials() {
    let out = Command::new(env!("CARGO_BIN_EXE_fetch-worker"))
        .arg("run")
        .env(
            "POS_LIST_URL",
            format!("ftp://posuser:{PASSWORD}@pos.example/l?token={TOKEN}"),
        )
        .env("METRICS_ADDR", "")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("POS_LIST_URL"), "{stderr}");
    assert_clean("start-up error", &stderr);
}

/// A listing redirected to another origin fails at once (no retry, whatever the job's
/// attempts), says why, and fetches nothing from the other server; a redirect within the same
/// origin is followed.
#[tokio::test]
async fn r11_redirects_leave_the_origin_never() {
    let elsewhere = FakePos::start(samples(), "127.0.0.1:0".parse().unwrap(), Faults::new())
        .await
        .unwrap();
    let mut stack = Stack::start("redirect", vec![]).await;
    let opts = json!({"attempts": 3, "backoff": {"type": "fixed", "delay": 50}});
    // Same origin first (307 keeps the POST and its form), then another origin.
    stack.pos.faults().add(
        FaultRule::new(Fault::Redirect {
            location: stack.pos.list_url(),
            status: 307,
        })
        .on(Target::List)
        .times(1),
    );
    let same = stack
        .queue
        .add(NewJob::new(day("BETA", "2026-02-09")).opts(opts.clone()))
        .await;
    let proc = stack.spawn(&[]);
    stack.wait_finished(1).await;
    stack.pos.faults().add(
        FaultRule::new(Fault::Redirect {
            location: format!("{}?token={TOKEN}", elsewhere.list_url()),
            status: 302,
        })
        .on(Target::List),
    );
    let other = stack
        .queue
        .add(NewJob::new(day("GOA", "2026-02-09")).opts(opts))
        .await;
    stack.wait_finished(2).await;
    proc.signal("TERM");
    let _ = proc.wait();

    assert!(
        stack.queue.hget(&same, "returnvalue").await.is_some(),
        "same-origin redirect not followed"
    );
    let reason = stack.queue.hget(&other, "failedReason").await.unwrap();
    assert!(reason.contains("redirect refused"), "{reason}");
    assert!(reason.contains("is not on the origin of"), "{reason}");
    assert!(!reason.contains(TOKEN), "{reason}");
    assert_eq!(stack.queue.hget(&other, "atm").await.as_deref(), Some("1"));
    assert_eq!(
        elsewhere.count(Target::Any),
        0,
        "the other origin was contacted"
    );
    let goa = stack
        .all("filerecords")
        .await
        .into_iter()
        .filter(|d| d.get_str("branch") == Ok("GOA"))
        .count();
    assert_eq!(goa, 0, "something of the refused day was stored");
    let notes: Vec<String> = stack
        .all("monitorentries")
        .await
        .iter()
        .map(|d| d.get_str("note").unwrap_or("").to_string())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("redirect refused")),
        "{notes:?}"
    );
}

/// A listing of more files than POS_MAX_FILES_PER_DAY fails the job at once with a clear
/// reason and a monitor entry, before any download.
#[tokio::test]
async fn r11_a_day_listing_too_many_files_downloads_nothing() {
    let names: Vec<String> = (0..100)
        .map(|i| format!("a_BMC_1_rd5000_2026-02-09_{:02}-{:02}_.csv", i / 60, i % 60))
        .collect();
    let mut stack = Stack::start(
        "maxfiles",
        vec![
            FaultRule::new(Fault::ListBody {
                body: names.join(","),
            })
            .on(Target::List),
        ],
    )
    .await;
    let id = stack
        .queue
        .add(NewJob::new(day("BMC", "2026-02-09")).opts(json!({"attempts": 3})))
        .await;
    let proc = stack.spawn(&[("POS_MAX_FILES_PER_DAY", "64".to_string())]);
    stack.wait_finished(1).await;
    proc.signal("TERM");
    let _ = proc.wait();
    let reason = stack.queue.hget(&id, "failedReason").await.unwrap();
    assert!(
        reason.contains("names 100 files, more than the limit of 64 per day"),
        "{reason}"
    );
    assert_eq!(stack.queue.hget(&id, "atm").await.as_deref(), Some("1"));
    assert_eq!(stack.pos.count(Target::Download), 0);
    assert!(stack.all("filerecords").await.is_empty());
    let notes = stack.all("monitorentries").await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0]
            .get_str("note")
            .unwrap()
            .contains("more than the limit")
    );
}

/// An attempt running past JOB_TIMEOUT_MS fails as retryable: the job is retried per its
/// attempts and ends failed with a reason naming the limit.
#[tokio::test]
async fn r11_an_attempt_past_the_job_timeout_fails_and_is_retried() {
    let mut stack = Stack::start("timeout", vec![]).await;
    let id = stack
        .queue
        .add(NewJob::new(json!({"ms": 60_000})).opts(json!({"attempts": 2})))
        .await;
    let proc = stack.spawn(&[
        ("PROCESSOR", "sleep".to_string()),
        ("JOB_TIMEOUT_MS", "300".to_string()),
    ]);
    stack.wait_finished(1).await;
    proc.signal("TERM");
    let _ = proc.wait();
    let reason = stack.queue.hget(&id, "failedReason").await.unwrap();
    assert_eq!(reason, "attempt timed out after 300 ms (JOB_TIMEOUT_MS)");
    assert_eq!(stack.queue.hget(&id, "atm").await.as_deref(), Some("2"));
    let stack_trace: Vec<String> =
        serde_json::from_str(&stack.queue.hget(&id, "stacktrace").await.unwrap()).unwrap();
    assert_eq!(
        stack_trace.len(),
        2,
        "both attempts timed out: {stack_trace:?}"
    );
}

/// Megabytes of job data are never echoed: failedReason, the stack trace, the result cache, the
/// job log and stderr stay a few KB.
#[tokio::test]
async fn r11_huge_job_data_is_not_echoed() {
    let mut stack = Stack::start("huge", vec![]).await;
    // 5 MB: large enough that any echo shows, small enough to write quickly under
    // `appendfsync always` (the repro used 20 MB).
    let blob = "z".repeat(5 << 20);
    let array = stack.queue.add(NewJob::new(json!([blob]))).await;
    let field = stack
        .queue
        .add(NewJob::new(
            json!({"branch": blob, "pos": 1, "date": "2026-02-09"}),
        ))
        .await;
    let proc = stack.spawn(&[]);
    stack.wait_finished(2).await;
    proc.signal("TERM");
    let (_, stderr) = proc.wait();
    for id in [&array, &field] {
        let reason = stack.queue.hget(id, "failedReason").await.unwrap();
        assert!(
            reason.starts_with("invalid job data"),
            "{}",
            &reason[..200.min(reason.len())]
        );
        assert!(
            reason.len() < 8192,
            "failedReason of {} bytes",
            reason.len()
        );
        let trace = stack.queue.hget(id, "stacktrace").await.unwrap_or_default();
        assert!(trace.len() < 8192, "stacktrace of {} bytes", trace.len());
        let key = stack.queue.keys.logs(id);
        let logs = stack.queue.lrange(&key).await;
        assert!(logs.iter().all(|l| l.len() < 8192));
    }
    let client = redis::Client::open(stack.redis.url(0)).unwrap();
    let mut c0 = client.get_multiplexed_async_connection().await.unwrap();
    for id in [&array, &field] {
        let key = fetch_worker::app_cache::ResultCache::key(&stack.queue.name, id);
        let entry: String = redis::cmd("GET")
            .arg(key)
            .query_async(&mut c0)
            .await
            .unwrap();
        assert!(entry.len() < 8192, "cache entry of {} bytes", entry.len());
    }
    let longest = stderr.iter().map(String::len).max().unwrap_or(0);
    assert!(longest < 16_384, "a stderr line of {longest} bytes");
}

/// A second SIGTERM during the graceful stop exits at once (code 130) instead of waiting for
/// the shutdown timeout; the job stays active for stalled recovery.
#[tokio::test]
async fn r11_a_second_signal_exits_at_once() {
    let mut stack = Stack::start("signal", vec![]).await;
    let id = stack.queue.add(NewJob::new(json!({"ms": 600_000}))).await;
    let proc = stack.spawn(&[
        ("PROCESSOR", "sleep".to_string()),
        ("SHUTDOWN_TIMEOUT_MS", "600000".to_string()),
        ("RUST_LOG", "fetch_worker=info".to_string()),
    ]);
    let active = stack.queue.keys.active.clone();
    let con = stack.queue.con.clone();
    crate::support::wait_count(&con, "LLEN", &active, 1, 30, "the job is active").await;
    proc.signal("TERM");
    // The first signal is taken once the worker says so; only then is the second sent (two
    // signals delivered together count as one).
    eventually(30, "the worker took the first signal", || {
        let seen = proc
            .lines()
            .iter()
            .any(|l| l.contains("shutdown requested"));
        async move { seen }
    })
    .await;
    proc.signal("TERM");
    let (code, stderr) = proc.wait();
    assert_eq!(
        code,
        Some(fetch_worker::shutdown::FORCED_EXIT_CODE),
        "{}",
        stderr.join("\n")
    );
    let stderr = stderr.join("\n");
    assert!(stderr.contains("shutdown requested"), "{stderr}");
    assert!(stderr.contains("second shutdown signal"), "{stderr}");
    assert_eq!(stack.queue.lrange(&active).await, vec![id]);
}

async fn get(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `/health/live` stays 200 while the process serves; `/health/ready` is 503 while Redis is
/// over its memory limit, while it is a read-only replica, and once the worker is draining for
/// shutdown, and 200 otherwise. A request whose headers never finish is closed by the server.
#[tokio::test]
async fn r11_readiness_tells_the_truth_and_half_sent_requests_are_closed() {
    let mut stack = Stack::start("ready", vec![]).await;
    let port = free_port();
    let proc = stack.spawn(&[
        ("PROCESSOR", "sleep".to_string()),
        ("SHUTDOWN_TIMEOUT_MS", "600000".to_string()),
        ("METRICS_ADDR", format!("127.0.0.1:{port}")),
        ("RUST_LOG", "fetch_worker=info".to_string()),
    ]);
    let base = format!("http://127.0.0.1:{port}");
    let (live, ready) = (
        format!("{base}/health/live"),
        format!("{base}/health/ready"),
    );
    eventually(30, "the ops endpoint is up and ready", || {
        let url = ready.clone();
        async move {
            match reqwest::get(&url).await {
                Ok(r) => r.status().as_u16() == 200,
                Err(_) => false,
            }
        }
    })
    .await;
    assert_eq!(get(&live).await.0, 200);

    let admin = redis::Client::open(stack.redis.url(0)).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    let config = |value: &str| {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET").arg("maxmemory").arg(value);
        cmd
    };
    let _: () = config("1").query_async(&mut admin).await.unwrap();
    let (status, body) = get(&ready).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["redis"].as_str().unwrap().starts_with("low memory"),
        "{body}"
    );
    assert_eq!(get(&live).await.0, 200);
    let _: () = config("0").query_async(&mut admin).await.unwrap();
    assert_eq!(get(&ready).await.0, 200);

    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(free_port())
        .query_async(&mut admin)
        .await
        .unwrap();
    let (status, body) = get(&ready).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["redis"], json!("read-only replica"));
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(get(&ready).await.0, 200);

    // A request that never finishes its headers.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut half = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        half.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(20), half.read_to_end(&mut rest)).await;
        // Our limit is 5 s; hyper's own default (30 s, with a timer) or none at all fails this.
        assert!(closed.is_ok(), "a half-sent request was kept open for 20 s");
    }

    stack.queue.add(NewJob::new(json!({"ms": 600_000}))).await;
    let active = stack.queue.keys.active.clone();
    crate::support::wait_count(
        &stack.queue.con,
        "LLEN",
        &active,
        1,
        30,
        "the job is active",
    )
    .await;
    proc.signal("TERM");
    eventually(30, "the worker took the first signal", || {
        let seen = proc
            .lines()
            .iter()
            .any(|l| l.contains("shutdown requested"));
        async move { seen }
    })
    .await;
    let (status, body) = get(&ready).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["shuttingDown"], json!(true));
    assert_eq!(get(&live).await.0, 200);
    proc.signal("TERM");
    let _ = proc.wait();
}
