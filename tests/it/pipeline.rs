//! The fetch job end to end: Node BullMQ enqueues `fetch-job {branch,pos,date}`, the worker
//! lists and downloads from the fake POS server, combines, and imports into a MongoDB-wire
//! server. Assertions are on Mongo documents, job hashes and Redis state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fetch_worker::app_cache::CacheInvalidation;
use fetch_worker::bullmq::{RunSummary, Worker};
use fetch_worker::fake_pos::{FakePos, Fault, FaultRule, Faults, Target};
use fetch_worker::handler::FetchHandler;
use fetch_worker::pipeline::combine::NewBranches;
use fetch_worker::pipeline::fetch::{FetchOptions, PosClient, RetryPolicy};
use fetch_worker::pipeline::import::Importer;
use fetch_worker::pipeline::storage::LocalStorage;
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};

use crate::support::mongo::TestMongo;
use crate::support::{RedisServer, Running, TestQueue, eventually, wait_count};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn samples() -> PathBuf {
    root().join("tests/fixtures/legacy-samples/input")
}

/// Rows of `expected.csv` per (branch, date): what the legacy combiner wrote for each day.
fn expected_rows() -> BTreeMap<(String, String), u64> {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/legacy-samples/expected.csv")).unwrap();
    let mut counts = BTreeMap::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let branch = fields.last().unwrap().to_string();
        let date = fields[8].to_string();
        *counts.entry((branch, date)).or_insert(0) += 1;
    }
    counts
}

/// Everything one test needs: Redis, MongoDB, the fake POS server, raw storage (also used by
/// the reprocess tests).
pub(crate) struct Env {
    pub(crate) redis: RedisServer,
    pub(crate) mongo: TestMongo,
    pub(crate) db_name: String,
    pub(crate) pos: FakePos,
    pub(crate) raw: tempfile::TempDir,
    pub(crate) queue: TestQueue,
}

impl Env {
    pub(crate) async fn start(label: &str) -> Env {
        let redis = RedisServer::start();
        let mongo = TestMongo::start();
        let db_name = TestMongo::unique_db(label);
        let pos = FakePos::start(samples(), "127.0.0.1:0".parse().unwrap(), Faults::new())
            .await
            .unwrap();
        let queue = TestQueue::new(&redis, label).await;
        Env {
            redis,
            mongo,
            db_name,
            pos,
            raw: tempfile::tempdir().unwrap(),
            queue,
        }
    }

    async fn handler(&self) -> Arc<FetchHandler> {
        self.handler_with_cache(None).await
    }

    async fn handler_with_cache(&self, cache: Option<CacheInvalidation>) -> Arc<FetchHandler> {
        let local = LocalStorage::new(self.raw.path()).unwrap();
        let stores = fetch_worker::pipeline::storage::Stores::default().with_local(&local);
        self.handler_with(cache, Arc::new(local), Arc::new(stores))
            .await
    }

    pub(crate) async fn handler_with(
        &self,
        cache: Option<CacheInvalidation>,
        storage: Arc<dyn fetch_worker::pipeline::storage::RawStorage>,
        materialize: Arc<dyn fetch_worker::handler::Materialize>,
    ) -> Arc<FetchHandler> {
        let mut options = FetchOptions::new(&self.pos.list_url(), &self.pos.base_url()).unwrap();
        options.list_timeout = Duration::from_secs(2);
        options.download_timeout = Duration::from_secs(2);
        options.retry = RetryPolicy {
            attempts: 2,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
        };
        let importer = Importer::new(self.mongo.database(&self.db_name).await, "test")
            .with_lease(Duration::from_secs(2));
        importer.ensure_indexes().await.unwrap();
        Arc::new(FetchHandler {
            client: PosClient::new(options).unwrap(),
            storage,
            materialize,
            importer,
            new_branches: NewBranches::default(),
            cache,
            batch_size: 1000,
            metrics: None,
            ready: fetch_worker::pipeline::ready::ReadyRule::default(),
            time_limit: None,
        })
    }

    async fn drain(&self, concurrency: usize) -> RunSummary {
        self.drain_with(self.handler().await, concurrency).await
    }

    /// Runs a worker with `handler` until the queue is drained (120 s at most).
    pub(crate) async fn drain_with(
        &self,
        handler: Arc<FetchHandler>,
        concurrency: usize,
    ) -> RunSummary {
        let mut opts = self.queue.options();
        opts.concurrency = concurrency;
        let worker = Worker::connect(&self.queue.url, opts, Arc::new(handler))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(120), worker.run(std::future::pending()))
            .await
            .expect("pipeline did not drain within 120 s")
            .unwrap()
    }

    /// Every document of `collection`.
    pub(crate) async fn all(&self, collection: &str) -> Vec<Document> {
        self.db()
            .await
            .collection(collection)
            .find(doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }

    /// Enqueues jobs with Node BullMQ (the app's producer code), returning their ids.
    fn enqueue(&self, jobs: &[Value]) -> Vec<String> {
        let script = root().join("node-producer-example/scripts/enqueue.js");
        let out = Command::new("node")
            .arg(script)
            .arg("--spec")
            .arg(Value::Array(jobs.to_vec()).to_string())
            .env("REDIS_JOB_URL", &self.queue.url)
            .env("QUEUE_NAME", &self.queue.name)
            .env("BULL_PREFIX", "bull")
            .stderr(Stdio::inherit())
            .output()
            .expect("node must be installed and node-producer-example set up (npm ci)");
        assert!(out.status.success(), "enqueue.js failed");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub(crate) async fn db(&self) -> mongodb::Database {
        self.mongo.database(&self.db_name).await
    }

    async fn count(&self, filter: Document) -> u64 {
        self.db()
            .await
            .collection::<Document>("transactions")
            .count_documents(filter)
            .await
            .unwrap()
    }

    async fn monitor_notes(&self) -> Vec<String> {
        let docs = self.all("monitorentries").await;
        docs.iter()
            .map(|d| d.get_str("note").unwrap_or("").to_string())
            .collect()
    }
}

fn job(branch: &str, date: &str, opts: Value) -> Value {
    json!({"name": "fetch-job", "data": {"branch": branch, "pos": 1, "date": date}, "opts": opts})
}

fn fast_retries() -> Value {
    json!({"attempts": 3, "backoff": {"type": "fixed", "delay": 50}})
}

/// Every transaction row (the importer's per-day fence guards have no branch).
fn rows_only() -> Document {
    doc! {"branch": {"$exists": true}}
}

fn day_filter(branch: &str, date: &str) -> Document {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    doc! {"branch": branch, "pos": 1, "date": fetch_worker::pipeline::import::bson_date(d)}
}

/// Every sample day enqueued by Node BullMQ ends with exactly the legacy combiner's rows in
/// MongoDB, file records `parsed`, and a return value that says so; running the same jobs
/// again changes nothing.
#[tokio::test]
async fn every_sample_day_is_imported_and_rerunning_changes_nothing() {
    let mut env = Env::start("e2e").await;
    let expected = expected_rows();
    let jobs: Vec<Value> = expected
        .keys()
        .map(|(b, d)| job(b, d, fast_retries()))
        .collect();
    let ids = env.enqueue(&jobs);
    assert_eq!(ids.len(), expected.len());
    let summary = env.drain(3).await;
    assert_eq!(
        (summary.completed, summary.failed),
        (expected.len() as u64, 0)
    );
    for ((branch, date), rows) in &expected {
        assert_eq!(
            env.count(day_filter(branch, date)).await,
            *rows,
            "{branch} {date}"
        );
    }
    let total: u64 = expected.values().sum();
    assert_eq!(env.count(rows_only()).await, total);
    let records = env.all("filerecords").await;
    assert_eq!(
        records.len(),
        std::fs::read_dir(samples())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".csv"))
            .count()
    );
    assert!(
        records.iter().all(|r| r.get_str("status") == Ok("parsed")),
        "all file records parsed"
    );

    // The return value of one job, as Node would read it.
    let (branch, date) = expected.keys().next().unwrap().clone();
    let rv: Value =
        serde_json::from_str(&env.queue.hget(&ids[0], "returnvalue").await.unwrap()).unwrap();
    assert_eq!(
        (
            rv["branch"].as_str(),
            rv["date"].as_str(),
            rv["pos"].as_u64()
        ),
        (Some(branch.as_str()), Some(date.as_str()), Some(1))
    );
    assert_eq!(
        rv["rows"]["imported"].as_u64(),
        expected.get(&(branch.clone(), date.clone())).copied()
    );
    assert_eq!(rv["rows"]["dateMismatch"], 0);
    // Clean files: the header line of each export is not a rejected line.
    assert_eq!(rv["rows"]["rejected"], 0);
    assert!(
        rv["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["sha256"].as_str().map(str::len) == Some(64))
    );
    assert!(
        env.queue
            .lrange(&env.queue.keys.logs(&ids[0]))
            .await
            .iter()
            .any(|l| l.starts_with("imported "))
    );
    assert_eq!(
        env.queue.hget(&ids[0], "progress").await.as_deref(),
        Some("100")
    );

    // Again, as duplicate jobs: nothing changes.
    env.enqueue(&jobs);
    let summary = env.drain(3).await;
    assert_eq!(summary.completed, expected.len() as u64);
    assert_eq!(env.count(rows_only()).await, total);
    for ((branch, date), rows) in &expected {
        assert_eq!(
            env.count(day_filter(branch, date)).await,
            *rows,
            "{branch} {date} after re-run"
        );
    }
    assert!(env.monitor_notes().await.is_empty());
}

/// Transient faults (HTML list body, HTTP 500, truncated and reset downloads, slow answers)
/// end as a retry and then a success; a download that keeps failing ends as a failed job with
/// a monitor entry; an empty day completes with "no files".
#[tokio::test]
async fn faults_end_as_retry_then_success_or_monitor_entry() {
    let mut env = Env::start("faults").await;
    let expected = expected_rows();
    let f = env.pos.faults();
    // The POS client tries twice per call, so three failures fail one job attempt. The list
    // call carries the day in its form body, so its fault runs with that job alone.
    f.add(FaultRule::new(Fault::Html).on(Target::List).times(3));
    let goa = env.enqueue(&[job("GOA", "2026-02-09", fast_retries())]);
    assert_eq!(env.drain(1).await.completed, 1);
    assert_eq!(
        env.queue.hget(&goa[0], "atm").await.as_deref(),
        Some("2"),
        "GOA: one failed attempt, then success"
    );
    assert_eq!(
        env.count(day_filter("GOA", "2026-02-09")).await,
        expected[&("GOA".to_string(), "2026-02-09".to_string())]
    );
    f.add(
        FaultRule::new(Fault::Status { status: 500 })
            .on(Target::Download)
            .path("a_EME_1_rd5500")
            .times(3),
    );
    f.add(
        FaultRule::new(Fault::Truncate)
            .on(Target::Download)
            .path("a_IRIGA_1_rd5000")
            .times(3),
    );
    f.add(
        FaultRule::new(Fault::Reset)
            .on(Target::Download)
            .path("a_MAGS_1_blpr")
            .times(3),
    );
    f.add(
        FaultRule::new(Fault::Delay { ms: 3000 })
            .on(Target::Download)
            .path("a_OLA_1_rd1800")
            .times(3),
    );
    f.add(
        FaultRule::new(Fault::Status { status: 500 })
            .on(Target::Download)
            .path("a_BRLN_1_rd5800"),
    );
    let days = [
        ("EME", "2026-02-09"),
        ("IRIGA", "2026-02-09"),
        ("MAGS", "2026-02-09"),
        ("OLA", "2026-02-09"),
        ("BRLN", "2026-02-09"),
        ("NOPE", "2026-02-09"),
    ];
    let ids = env.enqueue(
        &days
            .iter()
            .map(|(b, d)| job(b, d, fast_retries()))
            .collect::<Vec<_>>(),
    );
    let summary = env.drain(2).await;
    assert_eq!((summary.completed, summary.failed), (5, 1));
    for (i, (branch, date)) in days.iter().enumerate() {
        let atm = env.queue.hget(&ids[i], "atm").await;
        match *branch {
            "BRLN" => {
                assert_eq!(atm.as_deref(), Some("3"), "BRLN used all attempts");
                assert!(
                    env.queue
                        .hget(&ids[i], "failedReason")
                        .await
                        .unwrap()
                        .contains("rd5800")
                );
                assert_eq!(env.count(day_filter(branch, date)).await, 0);
            }
            "NOPE" => {
                let rv: Value =
                    serde_json::from_str(&env.queue.hget(&ids[i], "returnvalue").await.unwrap())
                        .unwrap();
                assert_eq!(rv["note"], "no files");
                // A finished job says 100 %, even when it found nothing (issue 15).
                assert_eq!(
                    env.queue.hget(&ids[i], "progress").await.as_deref(),
                    Some("100")
                );
            }
            _ => {
                assert_eq!(
                    atm.as_deref(),
                    Some("2"),
                    "{branch}: one failed attempt, then success"
                );
                let rows = expected[&(branch.to_string(), date.to_string())];
                assert_eq!(env.count(day_filter(branch, date)).await, rows, "{branch}");
            }
        }
    }
    let notes = env.monitor_notes().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with("download of a_BRLN_1_rd5800"),
        "{notes:?}"
    );
}

/// Bad job data fails at once, without retries, with a reason a person understands; hostile
/// references in a listing are refused and nothing is written outside raw storage.
#[tokio::test]
async fn bad_data_and_hostile_listings_fail_at_once() {
    let mut env = Env::start("bad").await;
    let bad = [
        json!({"name": "fetch-job", "data": {"branch": "../etc", "pos": 1, "date": "2026-02-09"}, "opts": fast_retries()}),
        json!({"name": "fetch-job", "data": {"branch": "BMC", "pos": 3, "date": "2026-02-09"}, "opts": fast_retries()}),
        json!({"name": "fetch-job", "data": {"branch": "BMC", "pos": 1, "date": "2026-02-30"}, "opts": fast_retries()}),
        json!({"name": "fetch-job", "data": {"pos": 1}, "opts": fast_retries()}),
    ];
    let ids = env.enqueue(&bad);
    env.pos.faults().add(
        FaultRule::new(Fault::ListBody {
            body: "a_B_1_rd5000_2025-01-01_..%2F_.csv,../x,/etc/passwd".into(),
        })
        .on(Target::List),
    );
    let hostile = env.enqueue(&[job("BMC", "2026-02-09", fast_retries())]);
    let summary = env.drain(1).await;
    assert_eq!(summary.failed, 5);
    for id in &ids {
        assert_eq!(env.queue.hget(id, "atm").await.as_deref(), Some("1"));
        let reason = env.queue.hget(id, "failedReason").await.unwrap();
        assert!(reason.starts_with("invalid job data: "), "{reason}");
    }
    assert!(
        env.queue
            .hget(&ids[1], "failedReason")
            .await
            .unwrap()
            .contains("pos must be 1 or 2")
    );
    assert_eq!(
        env.queue.hget(&hostile[0], "atm").await.as_deref(),
        Some("1")
    );
    let reason = env.queue.hget(&hostile[0], "failedReason").await.unwrap();
    assert!(reason.starts_with("listing failed"), "{reason}");
    assert_eq!(
        std::fs::read_dir(env.raw.path()).unwrap().count(),
        0,
        "nothing stored"
    );
    assert_eq!(env.count(rows_only()).await, 0);
    assert_eq!(
        env.monitor_notes().await.len(),
        1,
        "the refused listing is recorded"
    );
    // Not one download was attempted.
    assert_eq!(env.pos.count(Target::Download), 0);
}

impl Env {
    /// A worker process on this environment's queue, servers and storage, with `extra`
    /// settings on top of quick test defaults (1 s locks, a live lease of 10 minutes, so a
    /// takeover never waits for it).
    fn spawn_worker(&self, name: &str, extra: &[(&str, &str)]) -> std::process::Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fetch-worker"));
        cmd.arg("run")
            .env("REDIS_JOB_URL", &self.queue.url)
            .env("REDIS_CACHE_URL", self.redis.url(0))
            .env("QUEUE_NAME", &self.queue.name)
            .env("MONGO_URI", format!("{}/{}", self.mongo.uri, self.db_name))
            .env("POS_LIST_URL", self.pos.list_url())
            .env("POS_FILE_BASE_URL", self.pos.base_url())
            .env("RAW_STORAGE_PATH", self.raw.path())
            .env("LOCK_DURATION_MS", "1000")
            .env("STALLED_INTERVAL_MS", "500")
            .env("IMPORT_LEASE_MS", "600000")
            .env("IMPORT_BATCH_SIZE", "50")
            .env("MONGO_WRITE_MAX_TIME_MS", "500")
            .env("DRAIN_DELAY_MS", "200")
            .env("METRICS_ADDR", "")
            .env("WORKER_NAME", name)
            .env("RUST_LOG", "fetch_worker=warn")
            .stdout(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    /// Waits until the first rows of an import are in (60 s at most).
    async fn wait_for_some_rows(&self) {
        let coll = self.db().await.collection::<Document>("transactions");
        eventually(60, "an import is part way", || {
            let coll = coll.clone();
            async move { coll.count_documents(rows_only()).await.unwrap_or(0) > 0 }
        })
        .await;
    }

    /// Waits until `n` jobs have completed (90 s at most).
    async fn wait_for_completed(&self, n: u64) {
        let completed = &self.queue.keys.completed;
        wait_count(
            &self.queue.con,
            "ZCARD",
            completed,
            n,
            90,
            "the jobs completed",
        )
        .await;
    }

    /// The day's `imports` record.
    async fn import_record(&self, branch: &str, date: &str) -> Document {
        self.db()
            .await
            .collection::<Document>("imports")
            .find_one(doc! {"_id": format!("{branch}|1|{date}")})
            .await
            .unwrap()
            .expect("the day has an import record")
    }

    /// The day ends exact: one document per expected row, every one written by the import that
    /// the record says finished, the record `done`, and nothing else in the collection.
    async fn assert_day_exact(&self, branch: &str, date: &str) {
        let rows = expected_rows()[&(branch.to_string(), date.to_string())];
        assert_eq!(
            self.count(day_filter(branch, date)).await,
            rows,
            "{branch} {date}"
        );
        assert_eq!(self.count(rows_only()).await, rows, "no rows of other days");
        let record = self.import_record(branch, date).await;
        assert_eq!(record.get_str("state").unwrap(), "done", "{record:?}");
        let mut last = day_filter(branch, date);
        last.insert("importId", record.get_str("importId").unwrap());
        assert_eq!(
            self.count(last).await,
            rows,
            "every row from the finishing import"
        );
    }
}

/// A worker process killed with SIGKILL while it imports: after stalled recovery another
/// worker takes the day over at once (the crashed import's 10-minute lease does not hold it
/// up), and the day ends exact and `done`.
#[tokio::test]
async fn a_worker_killed_during_import_leaves_exactly_the_expected_rows() {
    let mut env = Env::start("kill").await;
    let (branch, date) = ("OLA", "2026-02-09");
    let rows = expected_rows()[&(branch.to_string(), date.to_string())];
    let ids = env.enqueue(&[job(
        branch,
        date,
        json!({"attempts": 2, "backoff": {"type": "fixed", "delay": 300}}),
    )]);
    let mut first = env.spawn_worker("doomed", &[]);
    env.wait_for_some_rows().await;
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = env.count(rows_only()).await;
    assert!(
        at_kill < rows,
        "the kill landed after the import finished ({at_kill} rows)"
    );
    let mut second = env.spawn_worker("survivor", &[]);
    env.wait_for_completed(1).await;
    second.kill().unwrap();
    second.wait().unwrap();
    env.assert_day_exact(branch, date).await;
    assert_eq!(env.queue.hget(&ids[0], "atm").await.as_deref(), Some("1"));
    assert!(env.monitor_notes().await.is_empty());
}

/// SIGTERM with a short shutdown timeout hands the job back mid-import; the next worker takes
/// the day over at once, without using an attempt, and the day ends exact.
#[tokio::test]
async fn a_job_handed_back_at_shutdown_is_taken_over_at_once() {
    let mut env = Env::start("handback").await;
    let (branch, date) = ("OLA", "2026-02-09");
    let ids = env.enqueue(&[job(branch, date, json!({"attempts": 1}))]);
    let mut first = env.spawn_worker("leaving", &[("SHUTDOWN_TIMEOUT_MS", "50")]);
    env.wait_for_some_rows().await;
    let pid = first.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        first.wait().unwrap().success(),
        "a clean exit after the hand-back"
    );
    let rows = expected_rows()[&(branch.to_string(), date.to_string())];
    assert!(env.count(rows_only()).await < rows, "handed back part way");
    assert_eq!(
        env.import_record(branch, date)
            .await
            .get_str("state")
            .unwrap(),
        "running"
    );
    let mut second = env.spawn_worker("next", &[]);
    env.wait_for_completed(1).await;
    second.kill().unwrap();
    second.wait().unwrap();
    env.assert_day_exact(branch, date).await;
    // One attempt allowed, and it sufficed: the hand-back used none.
    assert_eq!(env.queue.hget(&ids[0], "atm").await.as_deref(), Some("1"));
}

/// MongoDB stops during the first attempt's import and comes back: the attempt fails within
/// the bounded waits, the retry takes the day over at once, and the day ends exact.
#[tokio::test]
async fn a_mongodb_outage_during_the_first_attempt_ends_with_an_exact_day() {
    let mut env = Env::start("outage").await;
    let (branch, date) = ("OLA", "2026-02-09");
    let ids = env.enqueue(&[job(
        branch,
        date,
        json!({"attempts": 4, "backoff": {"type": "fixed", "delay": 1000}}),
    )]);
    let mut worker = env.spawn_worker(
        "patient",
        &[
            ("IMPORT_BATCH_SIZE", "20"),
            ("MONGO_SERVER_SELECTION_TIMEOUT_MS", "1000"),
            ("MONGO_OP_TIMEOUT_MS", "2000"),
        ],
    );
    env.wait_for_some_rows().await;
    if !env.mongo.stop() {
        eprintln!("MONGO_URI is not ours to stop; skipping the outage");
        let _ = worker.kill();
        let _ = worker.wait();
        return;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.mongo.restart();
    env.wait_for_completed(1).await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    env.assert_day_exact(branch, date).await;
    let atm: u32 = env
        .queue
        .hget(&ids[0], "atm")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        atm >= 2,
        "the outage failed at least one attempt (atm {atm})"
    );
    assert!(env.monitor_notes().await.is_empty());
}

/// Two jobs of the same day at once: the one that finds the other importing waits in
/// `delayed` (a reason in its log, no attempt used) instead of failing; both complete and the
/// day is exact.
#[tokio::test]
async fn a_duplicate_job_waits_for_the_running_import_of_its_day() {
    let mut env = Env::start("duplicate").await;
    let (branch, date) = ("OLA", "2026-02-09");
    let ids = env.enqueue(&[
        job(branch, date, json!({"attempts": 1})),
        job(branch, date, json!({"attempts": 1})),
    ]);
    let mut worker = env.spawn_worker(
        "both",
        &[
            ("JOB_CONCURRENCY", "2"),
            ("IMPORT_BATCH_SIZE", "20"),
            ("IMPORT_LEASE_MS", "3000"),
        ],
    );
    env.wait_for_completed(2).await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    env.assert_day_exact(branch, date).await;
    let mut waited = 0;
    for id in &ids {
        assert_eq!(
            env.queue.hget(id, "atm").await.as_deref(),
            Some("1"),
            "job {id}"
        );
        let mut con = env.queue.con.clone();
        let logs: Vec<String> = redis::cmd("LRANGE")
            .arg(env.queue.keys.logs(id))
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .unwrap();
        if logs.iter().any(|l| l.starts_with("waiting: another job")) {
            waited += 1;
        }
    }
    assert!(waited >= 1, "one job waited for the other");
    let record = env.import_record(branch, date).await;
    let fence = match record.get("fence") {
        Some(mongodb::bson::Bson::Int64(n)) => *n,
        Some(mongodb::bson::Bson::Int32(n)) => i64::from(*n),
        other => panic!("fence is {other:?}"),
    };
    assert_eq!(fence, 2, "two imports ran one after the other: {record:?}");
}

/// After an import the app's cached query results (keys matching the pattern in db 0) are
/// deleted with SCAN; other keys, and the job's own result entry, stay.
#[tokio::test]
async fn an_import_clears_the_apps_cached_results() {
    let env = Env::start("cache").await;
    let client = redis::Client::open(env.redis.url(0)).unwrap();
    let mut c0 = client.get_multiplexed_async_connection().await.unwrap();
    for i in 0..1200 {
        let _: () = redis::cmd("SET")
            .arg(format!("cache:report:{i}"))
            .arg("stale")
            .query_async(&mut c0)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("session:abc")
        .arg("keep")
        .query_async(&mut c0)
        .await
        .unwrap();
    let ids = env.enqueue(&[job("BMC", "2026-02-09", fast_retries())]);
    let cache = CacheInvalidation::new(
        crate::support::redis_conn(&env.redis.url(0)).await,
        "cache:*",
    );
    let handler = env.handler_with_cache(Some(cache)).await;
    let summary = env.drain_with(handler, 1).await;
    assert_eq!(summary.completed, 1);
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c0)
        .await
        .unwrap();
    assert_eq!(left, vec!["session:abc".to_string()]);
    let mut q = env.queue.con.clone();
    let logs: Vec<String> = redis::cmd("LRANGE")
        .arg(env.queue.keys.logs(&ids[0]))
        .arg(0)
        .arg(-1)
        .query_async(&mut q)
        .await
        .unwrap();
    assert!(
        logs.iter()
            .any(|l| l == "cleared 1200 cached query result(s)"),
        "{logs:?}"
    );
}

/// With GridFS raw storage (what scaled workers share), a day is imported the same way and its
/// file records point into GridFS.
#[tokio::test]
async fn gridfs_storage_imports_the_same_rows() {
    let env = Env::start("gridfs").await;
    let (branch, date) = ("BETA", "2026-02-09");
    let rows = expected_rows()[&(branch.to_string(), date.to_string())];
    env.enqueue(&[job(branch, date, fast_retries())]);
    let store = Arc::new(fetch_worker::pipeline::storage::GridFsStorage::new(
        env.db().await,
        None,
    ));
    let stores = fetch_worker::pipeline::storage::Stores::default().with_gridfs((*store).clone());
    let handler = env.handler_with(None, store, Arc::new(stores)).await;
    let summary = env.drain_with(handler, 1).await;
    assert_eq!(summary.completed, 1);
    assert_eq!(env.count(day_filter(branch, date)).await, rows);
    let records = env.all("filerecords").await;
    assert_eq!(records.len(), 7);
    for r in &records {
        let storage = r.get_document("storage").unwrap();
        assert_eq!(storage.get_str("provider").unwrap(), "gridfs");
        assert_eq!(
            storage.get_str("path").unwrap().len(),
            24,
            "an ObjectId in hex"
        );
    }
    assert_eq!(
        std::fs::read_dir(env.raw.path()).unwrap().count(),
        0,
        "nothing on local disk"
    );
}

/// An empty listing for a day that has not closed yet (today, in the POS's time zone) parks
/// the job in `delayed` until the export is expected, with the reason in its log and no
/// attempt used; a date days ahead fails at once; a past day with no files completes.
#[tokio::test]
async fn a_day_whose_export_is_not_ready_waits_for_it() {
    let mut env = Env::start("ready").await;
    let rule = fetch_worker::pipeline::ready::ReadyRule::default();
    let now = mongodb::bson::DateTime::now().timestamp_millis();
    let local_today = chrono::DateTime::from_timestamp_millis(now)
        .unwrap()
        .with_timezone(&rule.utc_offset)
        .date_naive();
    let today = local_today.to_string();
    let far = (local_today + chrono::Duration::days(5)).to_string();
    let ids = env.enqueue(&[
        job("BMC", &today, fast_retries()),
        job("BMC", &far, fast_retries()),
        job("BMC", "2020-01-01", fast_retries()),
    ]);
    let running = Running::start(
        &env.queue.url,
        env.queue.options(),
        Arc::new(env.handler().await),
        None,
    )
    .await;
    let con = env.queue.con.clone();
    wait_count(
        &con,
        "ZCARD",
        &env.queue.keys.delayed,
        1,
        30,
        "today's job parked",
    )
    .await;
    wait_count(
        &con,
        "ZCARD",
        &env.queue.keys.failed,
        1,
        30,
        "the far date failed",
    )
    .await;
    wait_count(
        &con,
        "ZCARD",
        &env.queue.keys.completed,
        1,
        30,
        "the past day done",
    )
    .await;
    running.stop().await;

    let mut q = env.queue.con.clone();
    let score: f64 = redis::cmd("ZSCORE")
        .arg(&env.queue.keys.delayed)
        .arg(&ids[0])
        .query_async(&mut q)
        .await
        .unwrap();
    // BullMQ keeps the due time in the score's upper bits (score = due * 4096 + seq).
    let due = (score / 4096.0) as i64;
    assert_eq!(
        due,
        rule.ready_at_ms(local_today),
        "due when the export is expected"
    );
    let atm = env.queue.hget(&ids[0], "atm").await;
    assert!(
        matches!(atm.as_deref(), None | Some("0")),
        "no attempt used: {atm:?}"
    );
    let logs = env.queue.lrange(&env.queue.keys.logs(&ids[0])).await;
    assert!(
        logs.iter().any(|l| l.starts_with("waiting: no files yet")),
        "{logs:?}"
    );
    let reason = env.queue.hget(&ids[1], "failedReason").await.unwrap();
    assert!(reason.contains("is in the future"), "{reason}");
    let rv: Value =
        serde_json::from_str(&env.queue.hget(&ids[2], "returnvalue").await.unwrap()).unwrap();
    assert_eq!(rv["note"], "no files");
}

/// JOB_TIMEOUT_MS in the pipeline: an attempt stuck on a slow POS server fails as retryable,
/// and when the last one times out the job fails with a monitor entry, like any final failure.
#[tokio::test]
async fn an_attempt_past_the_time_limit_fails_and_the_last_leaves_a_monitor_entry() {
    let mut env = Env::start("time_limit").await;
    env.pos.faults().set(vec![
        FaultRule::new(Fault::Delay { ms: 3_000 }).on(Target::Download),
    ]);
    let ids = env.enqueue(&[job(
        "BMC",
        "2026-02-09",
        json!({"attempts": 2, "backoff": {"type": "fixed", "delay": 50}}),
    )]);
    let mut handler = env.handler().await;
    Arc::get_mut(&mut handler).unwrap().time_limit = Some(Duration::from_millis(300));
    let summary = env.drain_with(handler, 1).await;
    assert_eq!((summary.completed, summary.failed), (0, 1));
    let reason = env.queue.hget(&ids[0], "failedReason").await.unwrap();
    assert_eq!(reason, "attempt timed out after 300 ms (JOB_TIMEOUT_MS)");
    assert_eq!(env.queue.hget(&ids[0], "atm").await.as_deref(), Some("2"));
    let notes = env.monitor_notes().await;
    assert_eq!(notes, vec![reason], "one entry, for the final failure");
}
