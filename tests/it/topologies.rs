//! Production Redis shapes (issue 10), each started here from `redis-server` on loopback: TLS
//! with client certificates, an ACL user limited to what BullMQ needs, a Sentinel group failed
//! over in the middle of a drain, and a primary demoted with `REPLICAOF` behind a moving
//! address, and a Redis Cluster (three masters, three replicas) whose queue master fails over
//! mid-drain. Each drain ends with every job completed exactly once and nothing left active.
//!
//! See: issue 10.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};

use fetch_worker::app_cache::ResultCache;
use fetch_worker::bullmq::{
    JobContext, ProcessError, Processor, QueueKeys, RunSummary, Worker, WorkerOptions,
};
use fetch_worker::redis_conn::{Connector, RedisConn, RedisTarget, TlsFiles, is_fatal_at_start};

use crate::support::proxy::Proxy;
use crate::support::topology::{
    Certs, Cluster, Node, demote, free_port, info_field, pause_and_catch_up, replication,
    wait_in_sync,
};
use crate::support::{NewJob, TestQueue, eventually, unique_queue};

/// Sleeps `ms` per job and counts how often each job ran (clones share the counts).
#[derive(Default, Clone)]
struct Counting {
    ms: u64,
    runs: Arc<Mutex<HashMap<String, u32>>>,
}

impl Processor for Counting {
    fn process(&self, job: JobContext) -> BoxFuture<'static, Result<Value, ProcessError>> {
        *self.runs.lock().unwrap().entry(job.id.clone()).or_default() += 1;
        let ms = self.ms;
        async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!({"id": job.id}))
        }
        .boxed()
    }
}

/// `TEST_LOG=1` shows the worker's logs.
fn logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("fetch_worker=debug")
            .with_test_writer()
            .try_init();
    }
}

fn queue_on(con: MultiplexedConnection, url: &str) -> TestQueue {
    logs();
    let name = unique_queue("topo");
    TestQueue {
        keys: QueueKeys::new("bull", &name),
        name,
        url: url.to_string(),
        con,
    }
}

async fn add_jobs(q: &mut TestQueue, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(q.add(NewJob::new(json!({"i": i}))).await);
    }
    ids
}

fn options(q: &TestQueue, concurrency: usize) -> WorkerOptions {
    let mut o = q.options();
    o.concurrency = concurrency;
    o.until_drained = false;
    o.lock_duration = Duration::from_secs(10);
    o
}

/// Every job completed once (one `completed` event, one run of the processor), none active or
/// waiting. Read through `q.con`, which must reach the current primary.
async fn assert_completed_once(q: &mut TestQueue, ids: &[String], runs: &Counting) {
    let k = q.keys.clone();
    assert_eq!(q.llen(&k.active).await, 0, "jobs left active");
    assert_eq!(q.llen(&k.wait).await, 0, "jobs left waiting");
    assert_eq!(q.zcard(&k.completed).await, ids.len() as u64);
    let events = q.events().await;
    let mut completed: HashMap<String, u32> = HashMap::new();
    for (name, fields) in &events {
        if name == "completed" {
            let id = fields.iter().find(|(k, _)| k == "jobId").unwrap().1.clone();
            *completed.entry(id).or_default() += 1;
        }
    }
    let runs = runs.runs.lock().unwrap().clone();
    for id in ids {
        assert_eq!(completed.get(id), Some(&1), "completed events of job {id}");
        assert_eq!(runs.get(id), Some(&1), "runs of job {id}");
        assert!(
            q.hget(id, "finishedOn").await.is_some(),
            "job {id} not finished"
        );
    }
}

async fn completed(q: &TestQueue) -> u64 {
    let mut con = q.con.clone();
    redis::cmd("ZCARD")
        .arg(&q.keys.completed)
        .query_async(&mut con)
        .await
        .unwrap_or(0)
}

/// Serves `/health/ready` for `target` on a free port, as the binary does (a probe connection
/// of its own); returns its URL and the token that stops it.
async fn serve_health(target: &RedisTarget) -> (String, tokio_util::sync::CancellationToken) {
    let port = free_port();
    let health = fetch_worker::ops::Health {
        redis: RedisConn::lazy(Connector::new(target).unwrap()),
        mongo: None,
        shutting_down: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    let listener = fetch_worker::ops::bind(([127, 0, 0, 1], port).into())
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(fetch_worker::ops::serve(
        listener,
        health,
        Arc::new(fetch_worker::metrics::Metrics::new()),
        stop.clone(),
    ));
    (format!("http://127.0.0.1:{port}/health/ready"), stop)
}

/// `/health/ready`'s status and its `redis` word.
async fn readiness(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    (status, body["redis"].as_str().unwrap_or("").to_string())
}

/// One `/health/ready` answer: when the request was sent and answered, its status (0 when
/// the endpoint did not answer) and its `redis` word.
#[derive(Debug, Clone)]
struct Sample {
    sent: std::time::Instant,
    answered: std::time::Instant,
    status: u16,
    redis: String,
}

/// `/health/ready` polled in the background every 100 ms (one request at a time), as an
/// orchestrator does, until [`HealthLog::finish`].
struct HealthLog {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl HealthLog {
    fn start(url: &str) -> HealthLog {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn({
            let (url, samples, stop) = (url.to_string(), samples.clone(), stop.clone());
            async move {
                let client = reqwest::Client::new();
                while !stop.is_cancelled() {
                    let sent = std::time::Instant::now();
                    let (status, redis) = match client
                        .get(&url)
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await
                    {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let text = resp.text().await.unwrap_or_default();
                            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                            (status, body["redis"].as_str().unwrap_or("").to_string())
                        }
                        Err(e) => (0, e.to_string()),
                    };
                    let answered = std::time::Instant::now();
                    samples.lock().unwrap().push(Sample {
                        sent,
                        answered,
                        status,
                        redis,
                    });
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        HealthLog {
            samples,
            stop,
            task,
        }
    }

    /// The samples so far.
    fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    async fn finish(self) -> Vec<Sample> {
        self.stop.cancel();
        let _ = self.task.await;
        self.samples.lock().unwrap().clone()
    }
}

/// The samples as `+ms status word` lines from `zero`, for failure messages.
fn timeline(samples: &[Sample], zero: std::time::Instant) -> String {
    samples
        .iter()
        .map(|s| {
            format!(
                "{:+6} ms..{:+6} ms {} {}",
                s.sent.saturating_duration_since(zero).as_millis(),
                s.answered.saturating_duration_since(zero).as_millis(),
                s.status,
                s.redis
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    run: tokio::task::JoinHandle<Result<RunSummary, fetch_worker::bullmq::Error>>,
}

fn start(worker: Worker) -> Running {
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(worker.run(async {
        let _ = rx.await;
    }));
    Running { stop, run }
}

impl Running {
    async fn stop(self) -> RunSummary {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(15), self.run)
            .await
            .expect("worker did not stop")
            .unwrap()
            .unwrap()
    }
}

/// `rediss://` with the suite's CA and a client certificate (`tls-auth-clients yes`): the
/// worker drains the queue and writes results to db 0 of the same server (the cache default);
/// without the CA file the certificate does not verify and the worker refuses to connect,
/// with an error (not an endless wait); without a client certificate the server refuses it.
#[tokio::test]
async fn tls_with_client_certificates_drains_and_an_unknown_ca_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = Certs::make(tmp.path());
    let port = free_port();
    let p = |name: &str| certs.path(name).display().to_string();
    let _server = Node::start_on(
        tmp.path(),
        "tls",
        port,
        &[
            "port 0".into(),
            format!("tls-port {port}"),
            format!("tls-cert-file {}", p("server.crt")),
            format!("tls-key-file {}", p("server.key")),
            format!("tls-ca-cert-file {}", p("ca.crt")),
            "tls-auth-clients yes".into(),
        ],
        false,
    );
    let url = format!("rediss://127.0.0.1:{port}/1");
    let files = TlsFiles {
        ca: Some(certs.path("ca.crt")),
        cert: Some(certs.path("client.crt")),
        key: Some(certs.path("client.key")),
    };
    let test_client = redis::Client::build_with_tls(
        url.as_str(),
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: std::fs::read(certs.path("client.crt")).unwrap(),
                client_key: std::fs::read(certs.path("client.key")).unwrap(),
            }),
            root_cert: Some(std::fs::read(certs.path("ca.crt")).unwrap()),
        },
    )
    .unwrap();
    let con = test_client
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut q = queue_on(con, &url);
    let ids = add_jobs(&mut q, 20).await;

    let target = RedisTarget::parse(&url, &files).unwrap();
    let con = RedisConn::connect(&target, "queue").await.unwrap();
    let cache = RedisConn::connect(&target.with_db(0), "cache")
        .await
        .unwrap();
    let runs = Counting::default();
    let results = ResultCache::new(cache, &q.name, Duration::from_secs(60));
    let worker = Worker::with_connection(con, options(&q, 4), Arc::new(runs.clone()))
        .with_observer(Arc::new(results));
    let running = start(worker);
    eventually(20, "all jobs completed over TLS", || {
        let q = &q;
        async move { completed(q).await == 20 }
    })
    .await;
    let summary = running.stop().await;
    assert_eq!(summary.completed, 20);
    assert_completed_once(&mut q, &ids, &runs).await;
    // The results went to db 0 of the same TLS server.
    let mut db0 = q.con.clone();
    let _: () = redis::cmd("SELECT")
        .arg(0)
        .query_async(&mut db0)
        .await
        .unwrap();
    let stored: Option<String> = redis::cmd("GET")
        .arg(ResultCache::key(&q.name, &ids[0]))
        .query_async(&mut db0)
        .await
        .unwrap();
    assert!(stored.unwrap().contains("completed"));

    // No CA file: the system's roots do not know the suite's CA.
    let no_ca = TlsFiles {
        ca: None,
        ..files.clone()
    };
    let target = RedisTarget::parse(&url, &no_ca).unwrap();
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        RedisConn::connect(&target, "queue"),
    )
    .await
    .expect("an unverifiable certificate must fail, not wait");
    let err = refused.expect_err("connected without trusting the server's CA");
    assert!(is_fatal_at_start(&err), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // No client certificate: the server (tls-auth-clients yes) refuses the connection.
    let no_cert = TlsFiles {
        ca: Some(certs.path("ca.crt")),
        ..TlsFiles::default()
    };
    let target = RedisTarget::parse(&url, &no_cert).unwrap();
    let attempt =
        tokio::time::timeout(Duration::from_secs(3), RedisConn::connect(&target, "queue")).await;
    assert!(
        !matches!(attempt, Ok(Ok(_))),
        "connected without a client certificate"
    );
}

/// An ACL user that has only the command groups BullMQ uses (no `KEYS`, `FLUSHDB`, `CONFIG`
/// or other dangerous commands; `INFO` allowed for the readiness check) runs everything the
/// worker does: scripts loaded with `EVAL` after a `NOSCRIPT`, the named blocking connection,
/// lock renewal, the result cache. A wrong password fails at start instead of waiting forever.
#[tokio::test]
async fn acl_user_with_only_the_needed_commands_runs_the_worker() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Node::start(
        tmp.path(),
        "acl",
        &[
            "user default off".into(),
            "user admin on >adminpw ~* &* +@all".into(),
            "user worker on >w0rk3r-pw ~* &* -@all +@read +@write +@scripting +@connection +select -@dangerous +info".into(),
        ],
        false,
    );
    let admin_url = format!("redis://admin:adminpw@127.0.0.1:{}/1", server.port);
    let admin = redis::Client::open(admin_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut q = queue_on(admin, &admin_url);
    let ids = add_jobs(&mut q, 10).await;
    let mut admin = q.con.clone();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();

    let url = format!("redis://worker:w0rk3r-pw@127.0.0.1:{}/1", server.port);
    let target = RedisTarget::parse(&url, &TlsFiles::default()).unwrap();
    let con = RedisConn::connect(&target, "queue").await.unwrap();
    // The user really is limited.
    let mut probe = con.clone();
    let denied: redis::RedisResult<()> = redis::cmd("FLUSHDB").query_async(&mut probe).await;
    assert_eq!(denied.unwrap_err().code(), Some("NOPERM"));
    let denied: redis::RedisResult<Vec<String>> =
        redis::cmd("KEYS").arg("*").query_async(&mut probe).await;
    assert_eq!(denied.unwrap_err().code(), Some("NOPERM"));

    let cache = RedisConn::connect(&target.with_db(0), "cache")
        .await
        .unwrap();
    let runs = Counting::default();
    let results = ResultCache::new(cache, &q.name, Duration::from_secs(60));
    let mut opts = options(&q, 2);
    opts.name = Some("acl-worker".into());
    let worker =
        Worker::with_connection(con, opts, Arc::new(runs.clone())).with_observer(Arc::new(results));
    let running = start(worker);
    eventually(20, "all jobs completed as the ACL user", || {
        let q = &q;
        async move { completed(q).await == 10 }
    })
    .await;
    // The blocking connection is open under the worker user with Node's client name.
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    let expected = QueueKeys::client_name("bull", &q.name, Some("acl-worker"));
    assert!(
        clients
            .lines()
            .any(|l| l.contains(&format!("name={expected} ")) && l.contains("user=worker")),
        "{clients}"
    );
    running.stop().await;
    assert_completed_once(&mut q, &ids, &runs).await;

    let wrong = format!("redis://worker:nope@127.0.0.1:{}/1", server.port);
    let target = RedisTarget::parse(&wrong, &TlsFiles::default()).unwrap();
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        RedisConn::connect(&target, "queue"),
    )
    .await
    .expect("a refused password must fail, not wait");
    let err = refused.expect_err("connected with a wrong password");
    assert!(!err.to_string().contains("nope"), "{err}");
}

/// A master, a replica and three sentinels, with passwords on both (data nodes and sentinels,
/// given in the URL); the worker finds the master through the sentinels.
/// In the middle of a drain the master is failed over the lossless way (writes paused, replica
/// caught up, `SENTINEL FAILOVER`, old master demoted): the worker's writes on the old master
/// get `READONLY`, it asks the sentinels again and carries on with the new master. Every job
/// completes exactly once, nothing is left active, and `/health/ready` ends 200 on the new
/// master.
#[tokio::test]
async fn sentinel_failover_mid_drain_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // Passwords on the data nodes and (another one) on the sentinels, both given in the URL.
    let auth = [
        "requirepass data-pw".to_string(),
        "masterauth data-pw".into(),
    ];
    let master = Node::start(tmp.path(), "m", &auth, false);
    let mut replica_conf = auth.to_vec();
    replica_conf.push(format!("replicaof 127.0.0.1 {}", master.port));
    let replica = Node::start(tmp.path(), "r", &replica_conf, false);
    let mut replica_con = replica.con_as(1, "data-pw").await;
    wait_in_sync(&mut replica_con).await;
    let sentinels: Vec<Node> = (0..3)
        .map(|i| {
            Node::start(
                tmp.path(),
                &format!("s{i}"),
                &[
                    format!("sentinel monitor mymaster 127.0.0.1 {} 2", master.port),
                    "sentinel down-after-milliseconds mymaster 2000".into(),
                    "sentinel failover-timeout mymaster 4000".into(),
                    "sentinel auth-pass mymaster data-pw".into(),
                    "requirepass sentinel-pw".into(),
                    "sentinel sentinel-pass sentinel-pw".into(),
                ],
                true,
            )
        })
        .collect();
    let mut s0 = sentinels[0].con_as(0, "sentinel-pw").await;
    // The sentinels know the replica before a failover is asked for.
    eventually(15, "sentinel sees the replica", || {
        let mut s0 = s0.clone();
        async move {
            let replicas: redis::RedisResult<Vec<HashMap<String, String>>> = redis::cmd("SENTINEL")
                .arg("REPLICAS")
                .arg("mymaster")
                .query_async(&mut s0)
                .await;
            replicas.is_ok_and(|r| {
                r.iter()
                    .any(|r| r.get("flags").is_some_and(|f| f == "slave"))
            })
        }
    })
    .await;

    let mut master_con = master.con_as(1, "data-pw").await;
    let mut q = queue_on(master_con.clone(), &master.url(1));
    let n = 150;
    let ids = add_jobs(&mut q, n).await;
    let hosts: Vec<String> = sentinels
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let url = format!(
        "redis+sentinel://:data-pw@{}/mymaster/1?sentinelPassword=sentinel-pw",
        hosts.join(",")
    );
    let target = RedisTarget::parse(&url, &TlsFiles::default()).unwrap();
    let con = RedisConn::connect(&target, "queue").await.unwrap();
    let runs = Counting {
        ms: 20,
        ..Counting::default()
    };
    let (ready, stop_ops) = serve_health(&target).await;
    // The probe's connection now goes to the old master.
    assert_eq!(readiness(&ready).await, (200, "ok".to_string()));

    let worker = Worker::with_connection(con, options(&q, 4), Arc::new(runs.clone()));
    let running = start(worker);
    eventually(20, "a third of the jobs completed", || {
        let q = &q;
        async move { completed(q).await >= (n / 3) as u64 }
    })
    .await;

    pause_and_catch_up(&mut master_con, &mut replica_con, Duration::from_secs(10)).await;
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg("mymaster")
        .query_async(&mut s0)
        .await
        .unwrap();
    for s in &sentinels {
        let con = s.con_as(0, "sentinel-pw").await;
        eventually(15, "every sentinel names the new master", || {
            let mut con = con.clone();
            let want = replica.port.to_string();
            async move {
                let addr: redis::RedisResult<(String, String)> = redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg("mymaster")
                    .query_async(&mut con)
                    .await;
                addr.is_ok_and(|(_, port)| port == want)
            }
        })
        .await;
    }
    demote(&mut master_con, replica.port).await;
    // The probe's connection still reaches the demoted master: not ready, and says why.
    assert_eq!(
        readiness(&ready).await,
        (503, "read-only replica".to_string())
    );
    let mut new_master = replica.con_as(1, "data-pw").await;
    assert_eq!(
        info_field(&replication(&mut new_master).await, "role"),
        Some("master")
    );

    // Read the queue on the new master from now on.
    q.con = new_master;
    eventually(30, "every job completed after the failover", || {
        let q = &q;
        async move { completed(q).await == n as u64 }
    })
    .await;
    eventually(10, "/health/ready is 200 on the new master", || {
        let ready = ready.clone();
        async move { reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    let summary = running.stop().await;
    stop_ops.cancel();
    assert_eq!(summary.completed, n as u64);
    assert_completed_once(&mut q, &ids, &runs).await;
}

/// The worker reaches its primary through an address that moves (a DNS name or virtual IP, as
/// managed Redis does): mid-drain the primary is demoted with `REPLICAOF` and the address
/// moved to the promoted replica. The worker's open connection now answers `READONLY`; it must
/// drop it and reconnect (to the new primary), not loop on `READONLY` forever. While the
/// address still reaches the demoted node, `/health/ready` says `read-only replica`.
#[tokio::test]
async fn demoted_primary_makes_the_worker_reconnect_not_loop_on_readonly() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Node::start(tmp.path(), "a", &[], false);
    let b = Node::start(
        tmp.path(),
        "b",
        &[format!("replicaof 127.0.0.1 {}", a.port)],
        false,
    );
    let mut b_con = b.con(1).await;
    wait_in_sync(&mut b_con).await;
    let proxy = Proxy::start(a.addr()).await;
    let url = format!("redis://{}/1", proxy.addr);
    let mut a_con = a.con(1).await;
    let mut q = queue_on(a_con.clone(), &url);
    let n = 100;
    let ids = add_jobs(&mut q, n).await;
    let target = RedisTarget::parse(&url, &TlsFiles::default()).unwrap();
    let con = RedisConn::connect(&target, "queue").await.unwrap();
    let runs = Counting {
        ms: 20,
        ..Counting::default()
    };
    let (ready, stop_ops) = serve_health(&target).await;
    assert_eq!(readiness(&ready).await, (200, "ok".to_string()));
    let worker = Worker::with_connection(con, options(&q, 4), Arc::new(runs.clone()));
    let running = start(worker);
    eventually(20, "a third of the jobs completed", || {
        let q = &q;
        async move { completed(q).await >= (n / 3) as u64 }
    })
    .await;

    pause_and_catch_up(&mut a_con, &mut b_con, Duration::from_secs(10)).await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut b_con)
        .await
        .unwrap();
    proxy.set_upstream(b.addr());
    demote(&mut a_con, b.port).await;
    // The probe's open connection reaches the demoted node: 503, then a new connection
    // reaches the new primary and readiness returns.
    assert_eq!(
        readiness(&ready).await,
        (503, "read-only replica".to_string())
    );
    eventually(10, "/health/ready is 200 on the new primary", || {
        let ready = ready.clone();
        async move { readiness(&ready).await.0 == 200 }
    })
    .await;

    q.con = b_con;
    eventually(30, "every job completed on the promoted replica", || {
        let q = &q;
        async move { completed(q).await == n as u64 }
    })
    .await;
    let summary = running.stop().await;
    stop_ops.cancel();
    assert_eq!(summary.completed, n as u64);
    assert_completed_once(&mut q, &ids, &runs).await;
}

async fn http_status(url: &str) -> Option<u16> {
    Some(reqwest::get(url).await.ok()?.status().as_u16())
}

/// Started before its Redis, the worker waits (each try logged with the address, password
/// hidden) instead of exiting; meanwhile `/health/live` is 200 and `/health/ready` 503. Once
/// Redis is up it processes the queue, and with `REDIS_CACHE_URL` unset the result goes to
/// database 0 of the job server.
#[tokio::test]
async fn worker_started_before_redis_waits_then_runs_with_the_cache_on_db_0() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let redis_port = free_port();
    let ops_port = free_port();
    let queue = unique_queue("late");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fetch-worker"))
        .arg("run")
        .env(
            "REDIS_JOB_URL",
            format!("redis://:S3cretPw@127.0.0.1:{redis_port}/1"),
        )
        .env_remove("REDIS_CACHE_URL")
        .env("QUEUE_NAME", &queue)
        .env("PROCESSOR", "noop")
        .env("METRICS_ADDR", format!("127.0.0.1:{ops_port}"))
        .env("DRAIN_DELAY_MS", "200")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "fetch_worker=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut waiting = Vec::new();
    while waiting.len() < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("no 'waiting for Redis' lines");
        if line.contains("waiting for Redis") {
            waiting.push(line);
        }
    }
    for line in &waiting {
        assert!(!line.contains("S3cretPw"), "{line}");
        // One line per try names the server, the setting and the cause, once (issue 15).
        assert!(
            line.contains(&format!(
                "Redis at redis://***@127.0.0.1:{redis_port}/1 (REDIS_JOB_URL) is not reachable: "
            )),
            "{line}"
        );
        assert!(
            line.matches("Connection refused").count() <= 1,
            "the cause once: {line}"
        );
        assert!(
            line.contains(&format!("redis://***@127.0.0.1:{redis_port}/1")),
            "{line}"
        );
    }
    assert!(child.try_wait().unwrap().is_none(), "the worker exited");
    let base = format!("http://127.0.0.1:{ops_port}");
    assert_eq!(http_status(&format!("{base}/health/live")).await, Some(200));
    assert_eq!(
        http_status(&format!("{base}/health/ready")).await,
        Some(503)
    );

    let server = Node::start_on(
        tmp.path(),
        "late",
        redis_port,
        &["requirepass S3cretPw".into()],
        false,
    );
    let url = format!("redis://:S3cretPw@127.0.0.1:{redis_port}/1");
    let con = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut q = TestQueue {
        keys: QueueKeys::new("bull", &queue),
        name: queue.clone(),
        url,
        con,
    };
    let id = q.add(NewJob::new(json!({"late": true}))).await;
    eventually(20, "the job completed", || {
        let q = &q;
        async move { completed(q).await == 1 }
    })
    .await;
    let mut db0 = redis::Client::open(format!("redis://:S3cretPw@127.0.0.1:{redis_port}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = ResultCache::key(&queue, &id);
    eventually(10, "the result is in db 0 of the job server", || {
        let mut db0 = db0.clone();
        let key = key.clone();
        async move {
            redis::cmd("EXISTS")
                .arg(&key)
                .query_async::<bool>(&mut db0)
                .await
                .unwrap_or(false)
        }
    })
    .await;
    let _: () = redis::cmd("PING").query_async(&mut db0).await.unwrap();
    let ready = format!("{base}/health/ready");
    eventually(10, "/health/ready turns 200 once Redis is up", || {
        let ready = ready.clone();
        async move { http_status(&ready).await == Some(200) }
    })
    .await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());
    drop(server);
}

/// Results stored while the cache server is down reach it once it is back (the issue saw 2 of
/// 4 lost after a restart).
#[tokio::test]
async fn result_cache_writes_survive_a_cache_restart() {
    logs();
    let mut server = crate::support::RedisServer::start();
    let cache = crate::support::redis_conn(&server.url(0)).await;
    let results = ResultCache::new(cache, "restart", Duration::from_secs(600));
    server.stop_for_test();
    for id in ["1", "2", "3", "4"] {
        results.store(id, Ok(&json!({"id": id})));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    tokio::time::timeout(Duration::from_secs(20), results.flush())
        .await
        .expect("flush did not finish");
    let mut con = redis::Client::open(server.url(0))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for id in ["1", "2", "3", "4"] {
        let stored: Option<String> = redis::cmd("GET")
            .arg(ResultCache::key("restart", id))
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(
            stored.is_some_and(|s| s.contains("completed")),
            "result {id}"
        );
    }
}

/// `OOM` (Redis full under `noeviction`) is transient: claims refused with it are retried
/// with backoff, and once memory is available the queue drains, each job once, none failed.
/// (A finish is not refused with `OOM` by Redis: its script's first write frees memory, and
/// Redis lets a script that has written go on; finishing through `READONLY` is proven by the
/// failover tests above.)
#[tokio::test]
async fn oom_is_waited_out_not_fatal() {
    logs();
    let server = crate::support::RedisServer::start();
    let mut q = TestQueue::new(&server, "oom").await;
    let ids = add_jobs(&mut q, 3).await;
    let admin = q.con.clone();
    let set_maxmemory = |bytes: &'static str| {
        let mut admin = admin.clone();
        async move {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory")
                .arg(bytes)
                .query_async(&mut admin)
                .await
                .unwrap();
        }
    };
    set_maxmemory("1").await;
    let runs = Counting::default();
    let con = crate::support::redis_conn(&q.url).await;
    let worker = Worker::with_connection(con, options(&q, 1), Arc::new(runs.clone()));
    let running = start(worker);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(completed(&q).await, 0, "claimed despite OOM?");
    let waiting: u64 = redis::cmd("LLEN")
        .arg(&q.keys.wait)
        .query_async(&mut admin.clone())
        .await
        .unwrap();
    assert_eq!(waiting, 3);
    set_maxmemory("0").await;
    eventually(15, "the queue drained after OOM ended", || {
        let q = &q;
        async move { completed(q).await == 3 }
    })
    .await;
    let summary = running.stop().await;
    assert_eq!((summary.completed, summary.failed), (3, 0));
    assert_completed_once(&mut q, &ids, &runs).await;
}

/// A cluster connection for the test's own reads of keys in any slot.
async fn cluster_con(cluster: &Cluster) -> redis::cluster_async::ClusterConnection {
    let seeds: Vec<String> = cluster.nodes.iter().map(|n| n.url(0)).collect();
    redis::cluster::ClusterClient::new(seeds)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

/// Issue 10: a Redis Cluster of three masters and three replicas, prefix `{bull}` (so every
/// key of the queue is in one slot). The worker's seeds leave out the queue's master, so it
/// must follow `MOVED` to reach it. Mid-drain the queue's master fails over to its replica
/// (`CLUSTER FAILOVER` on the replica: coordinated, nothing lost); the worker's commands then
/// meet `MOVED` (or the blocked marker wait is cut), and the worker follows the new slot map.
/// Then the new master dies (SIGKILL, after its writes were paused and its replica caught
/// up, so nothing acknowledged is lost): for a few seconds no node serves the queue's slot,
/// until its replica is promoted (`CLUSTER FAILOVER FORCE`). Every job completes once,
/// nothing is left active, each job's result is in the cache (whose keys spread over all
/// masters), the cache invalidation finds them on every master, and `/health/ready` (which
/// reads `INFO` from every master), polled throughout, is 200 before, never 200 while the
/// queue has no reachable master (past the check's own bound, [`CHECK_TIMEOUT`]), and 200
/// again after each failover.
///
/// [`CHECK_TIMEOUT`]: fetch_worker::ops::CHECK_TIMEOUT
#[tokio::test]
async fn cluster_failover_mid_drain_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(tmp.path()).await;
    let (master, replica) = cluster.owner_of(cluster.nodes[0].port, "{bull}").await;
    let replica = replica.expect("the queue's master has a replica");
    let old_master = cluster.node(master);
    let mut q = queue_on(old_master.con(0).await, &old_master.url(0));
    q.keys = QueueKeys::new("{bull}", &q.name);
    let n = 300;
    let ids = add_jobs(&mut q, n).await;

    let target = RedisTarget::parse(&cluster.url_without(master), &TlsFiles::default()).unwrap();
    assert!(target.is_cluster());
    let con = RedisConn::connect(&target, "queue").await.unwrap();
    let cache = RedisConn::connect(&target.with_db(0), "cache")
        .await
        .unwrap();
    let results = ResultCache::new(cache.clone(), &q.name, Duration::from_secs(60));
    let (ready, stop_ops) = serve_health(&target).await;
    assert_eq!(readiness(&ready).await, (200, "ok".to_string()));
    let health = HealthLog::start(&ready);
    let zero = std::time::Instant::now();

    let runs = Counting {
        ms: 30,
        ..Counting::default()
    };
    let mut o = options(&q, 4);
    o.prefix = "{bull}".into();
    // Longer than the outage below, so no lock lapses while the slot has no master.
    o.lock_duration = Duration::from_secs(30);
    let worker =
        Worker::with_connection(con, o, Arc::new(runs.clone())).with_observer(Arc::new(results));
    let running = start(worker);
    eventually(20, "a quarter of the jobs completed", || {
        let q = &q;
        async move { completed(q).await >= (n / 4) as u64 }
    })
    .await;
    let before = completed(&q).await;
    assert!(before < n as u64, "the drain ended before the failover");
    // `fetch-worker reprocess` reaches the queue through the cluster too (seeds without the
    // queue's master: it follows MOVED), and refuses a queue without a hash tag.
    let reprocess = |prefix: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fetch-worker"))
            .args([
                "reprocess",
                "--branch",
                "BMC",
                "--pos",
                "1",
                "--from",
                "2026-02-09",
            ])
            .args(["--redis-job-url", &cluster.url_without(master)])
            .args(["--queue-name", &q.name, "--bull-prefix", prefix])
            .output()
            .unwrap()
    };
    let refused = reprocess("bull");
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("BULL_PREFIX={bull}"), "{why}");
    let added = reprocess("{bull}");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let reprocess_id = String::from_utf8(added.stdout).unwrap().trim().to_string();
    assert!(
        reprocess_id.starts_with("reprocess.BMC.1.2026-02-09."),
        "{reprocess_id}"
    );
    let mut ids = ids;
    ids.push(reprocess_id);
    let n = n + 1;

    let new_master = cluster.node(replica);
    let mut replica_con = new_master.con(0).await;
    let _: () = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .query_async(&mut replica_con)
        .await
        .unwrap();
    eventually(15, "the replica owns the queue's slot", || {
        let cluster = &cluster;
        async move { cluster.owner_of(replica, "{bull}").await.0 == replica }
    })
    .await;
    assert_eq!(
        info_field(&replication(&mut replica_con).await, "role"),
        Some("master")
    );

    // Read the queue on the new master from now on; the failover was mid-drain, so jobs are
    // left for the worker to finish on the new master.
    q.con = replica_con;
    let after = completed(&q).await;
    eprintln!("cluster failover: {before} completed before, {after} when the slot moved, of {n}");
    assert!(after < n as u64, "the drain ended before the slot moved");
    eventually(30, "every job completed after the failover", || {
        let q = &q;
        async move { completed(q).await == n as u64 }
    })
    .await;
    eventually(10, "/health/ready is 200 after the failover", || {
        let ready = ready.clone();
        async move { readiness(&ready).await == (200, "ok".to_string()) }
    })
    .await;

    // The queue's new master dies mid-drain. Its replica (the first master, demoted above) is
    // kept from taking over on its own, so the outage lasts as long as the test says.
    let mut standby = cluster.node(master).con(0).await;
    wait_in_sync(&mut standby).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("cluster-replica-no-failover")
        .arg("yes")
        .query_async(&mut standby)
        .await
        .unwrap();
    let more = 200;
    ids.extend(add_jobs(&mut q, more).await);
    let n = n + more;
    eventually(20, "the second drain under way", || {
        let q = &q;
        async move { completed(q).await >= (n - more / 2) as u64 }
    })
    .await;
    let mut dying = q.con.clone();
    pause_and_catch_up(&mut dying, &mut standby, Duration::from_secs(10)).await;
    let before_kill = completed(&q).await;
    assert!(
        before_kill < n as u64,
        "the drain ended before the master died"
    );
    cluster
        .nodes
        .iter_mut()
        .find(|node| node.port == replica)
        .unwrap()
        .kill();
    let killed = std::time::Instant::now();
    let outage = Duration::from_secs(5);
    tokio::time::sleep(outage).await;
    // Still no master for the slot: the standby is a replica until told otherwise.
    assert_eq!(
        info_field(&replication(&mut standby).await, "role"),
        Some("slave")
    );
    let promoting = std::time::Instant::now();
    let _: () = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .arg("FORCE")
        .query_async(&mut standby)
        .await
        .unwrap();
    eventually(20, "the standby is promoted", || {
        let mut standby = standby.clone();
        async move { info_field(&replication(&mut standby).await, "role") == Some("master") }
    })
    .await;
    q.con = standby;
    eventually(60, "every job completed after the master died", || {
        let q = &q;
        async move { completed(q).await == n as u64 }
    })
    .await;
    eventually(
        20,
        "/health/ready is 200 again on the promoted standby",
        || {
            let health = &health;
            async move {
                health
                    .samples()
                    .last()
                    .is_some_and(|s| s.sent > promoting && s.status == 200)
            }
        },
    )
    .await;
    let samples = health.finish().await;
    let shown = timeline(&samples, zero);
    eprintln!(
        "cluster /health/ready (kill at +{} ms, promotion at +{} ms):\n{shown}",
        (killed - zero).as_millis(),
        (promoting - zero).as_millis()
    );
    // While no node served the queue's slot, past the check's own bound, never 200: each
    // answer sent then and answered before the promotion was asked for says why not.
    let bound = fetch_worker::ops::CHECK_TIMEOUT;
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent >= killed + bound && s.answered <= promoting)
        .collect();
    assert!(
        during.len() >= 2,
        "too few answers during the outage to judge:\n{shown}"
    );
    for s in &during {
        assert_eq!(
            s.status, 503,
            "ready while the queue had no master:\n{shown}"
        );
        assert_eq!(s.redis, "unreachable", "{shown}");
    }
    // Before the first failover and after the second, ready.
    assert!(samples.first().is_some_and(|s| s.status == 200), "{shown}");
    assert!(samples.last().is_some_and(|s| s.status == 200), "{shown}");

    let summary = running.stop().await;
    stop_ops.cancel();
    assert_eq!(summary.completed, n as u64);
    assert_completed_once(&mut q, &ids, &runs).await;

    // The results landed in the cluster, in slots of every master.
    let mut any = cluster_con(&cluster).await;
    let mut homes = std::collections::HashSet::new();
    for id in &ids {
        let key = ResultCache::key(&q.name, id);
        let exists: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut any)
            .await
            .unwrap();
        assert!(exists, "result of job {id} missing");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&key)
            .query_async(&mut any)
            .await
            .unwrap();
        homes.insert(slot / 5462);
    }
    assert_eq!(
        homes.len(),
        3,
        "the result keys should spread over the masters"
    );
    let invalidation = fetch_worker::app_cache::CacheInvalidation::new(
        cache,
        format!("fetch-worker:result:{}:*", q.name),
    );
    assert_eq!(invalidation.run().await.unwrap(), n as u64);
    let left: u64 = redis::cmd("EXISTS")
        .arg(ResultCache::key(&q.name, &ids[0]))
        .query_async(&mut any)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// The library's worker refuses it too, before contacting any server.
#[tokio::test]
async fn a_cluster_worker_without_a_hash_tag_refuses_to_run() {
    let target = RedisTarget::parse(
        "redis+cluster://127.0.0.1:1,127.0.0.1:2",
        &TlsFiles::default(),
    )
    .unwrap();
    let con = RedisConn::lazy(Connector::new(&target).unwrap());
    let o = WorkerOptions::new("bull", "fetch");
    let worker = Worker::with_connection(con, o, Arc::new(Counting::default()));
    let err = tokio::time::timeout(Duration::from_secs(5), worker.run(std::future::pending()))
        .await
        .expect("refused at once")
        .unwrap_err();
    assert!(err.to_string().contains("BULL_PREFIX={bull}"), "{err}");
}

/// In Cluster mode a prefix and queue name without a hash tag would spread a queue's keys over
/// slots, and every script would fail with `CROSSSLOT`: the worker refuses to start and names
/// what to set, as BullMQ requires of Node too. Checked before any server is contacted.
#[test]
fn cluster_mode_refuses_a_prefix_without_a_hash_tag() {
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fetch-worker"));
        cmd.arg("run")
            .env("REDIS_CACHE_URL", "redis://127.0.0.1:1/0")
            .env("MONGO_URI", "mongodb://127.0.0.1:1/x")
            .env("METRICS_ADDR", "")
            .env_remove("BULL_PREFIX")
            .env_remove("QUEUE_NAME")
            .env_remove("REDIS_CLUSTER");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    for env in [
        vec![(
            "REDIS_JOB_URL",
            "redis+cluster://:SECRET@127.0.0.1:1,127.0.0.1:2",
        )],
        vec![
            ("REDIS_JOB_URL", "redis://:SECRET@127.0.0.1:1"),
            ("REDIS_CLUSTER", "1"),
            ("BULL_PREFIX", "bull"),
            ("QUEUE_NAME", "fetch"),
        ],
    ] {
        let out = run(&env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {err}");
        assert!(err.contains("BULL_PREFIX={bull}"), "{err}");
        assert!(!err.contains("SECRET"), "{err}");
    }
}

/// Issue 14: the queue metrics' pipelined reads work on a Cluster: the queue's keys share the
/// `{bull}` hash tag, so both round trips go to the queue's master, which the sampler reaches
/// through seeds that leave it out (following `MOVED`).
#[tokio::test]
async fn cluster_queue_metrics_sample_through_one_slot() {
    use fetch_worker::queue_metrics::{QueueSampler, State};
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(tmp.path()).await;
    let (master, _) = cluster.owner_of(cluster.nodes[0].port, "{bull}").await;
    let owner = cluster.node(master);
    let mut q = queue_on(owner.con(0).await, &owner.url(0));
    q.keys = QueueKeys::new("{bull}", &q.name);
    let oldest = q.add(NewJob::new(json!({"n": 1}))).await;
    q.add(NewJob::new(json!({"n": 2}))).await;
    q.add(NewJob::new(json!({})).opts(json!({"priority": 1})))
        .await;
    q.add(NewJob::new(json!({})).opts(json!({"delay": 60_000})))
        .await;
    let mut con = owner.con(0).await;
    let _: () = redis::cmd("HSET")
        .arg(q.keys.job(&oldest))
        .arg("timestamp")
        .arg(crate::support::now_ms() - 30_000)
        .query_async(&mut con)
        .await
        .unwrap();

    let target = RedisTarget::parse(&cluster.url_without(master), &TlsFiles::default()).unwrap();
    assert!(target.is_cluster());
    let sampler = QueueSampler::new(
        RedisConn::lazy(Connector::new(&target).unwrap()),
        q.keys.clone(),
    );
    let sample = sampler
        .sample()
        .await
        .expect("the sample reads the cluster");
    let count = |state: State| {
        sample
            .jobs
            .iter()
            .find(|(s, _)| *s == state)
            .map(|(_, n)| *n)
    };
    assert_eq!(count(State::Wait), Some(2));
    assert_eq!(count(State::Prioritized), Some(1));
    assert_eq!(count(State::Delayed), Some(1));
    assert_eq!(count(State::Active), Some(0));
    let age = sample.oldest_waiting_age.as_secs();
    assert!((30..90).contains(&age), "age {age}");
}
