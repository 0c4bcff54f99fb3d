//! `moveToFinishedBatch`: a batch of finishes leaves Redis exactly as the same finishes made
//! one call at a time, and a job it refuses does not stop the others.

use std::collections::BTreeMap;

use fetch_worker::bullmq::scripts::move_to_finished::{MoveToFinished, Outcome};
use fetch_worker::bullmq::scripts::move_to_finished_batch::MoveToFinishedBatch;
use fetch_worker::bullmq::scripts::{Claim, ClaimArgs};
use fetch_worker::bullmq::{Error, Job, KeepJobs, ScriptCode};
use serde_json::json;

use crate::support::{NewJob, RedisServer, TestQueue, claim_args};

const NOW: u64 = 1_800_000_000_000;

async fn claim(q: &mut TestQueue, token: &str) -> Job {
    q.claim_job(&claim_args(token), NOW).await
}

async fn hgetall(q: &mut TestQueue, key: &str) -> BTreeMap<String, String> {
    let mut h: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(key)
        .query_async(&mut q.con)
        .await
        .unwrap();
    // Written by the test's add at its own time: the one field that differs between queues.
    h.remove("timestamp");
    h
}

async fn zrange_scores(q: &mut TestQueue, key: &str) -> Vec<(String, f64)> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut q.con)
        .await
        .unwrap()
}

/// Six jobs; job 3 carries a deduplication id whose key names it. Jobs 1-4 are claimed with
/// tokens t1-t4 (job 1 also marked stalled), so 5 and 6 wait for fetch-next.
async fn setup(q: &mut TestQueue) -> Vec<Job> {
    for _ in 0..6 {
        q.add(NewJob::new(json!({"n": 1}))).await;
    }
    let keys = q.keys.clone();
    let _: () = redis::pipe()
        .hset(keys.job("3"), "deid", "d3")
        .ignore()
        .set(format!("{}de:d3", keys.base), "3")
        .ignore()
        .sadd(&keys.stalled, "1")
        .ignore()
        .query_async(&mut q.con)
        .await
        .unwrap();
    let mut held = Vec::new();
    for t in ["t1", "t2", "t3", "t4"] {
        held.push(claim(q, t).await);
    }
    held
}

/// What each held job's finish is: 1 completes (kept), 2 completes and is deleted at once,
/// 3 (deduplicated) fails for good with a stack trace, 4 completes without fetch-next.
fn outcomes() -> Vec<(Outcome, KeepJobs, bool)> {
    let gone = KeepJobs {
        count: 0,
        age: None,
        limit: None,
    };
    vec![
        (
            Outcome::Completed {
                returnvalue: json!({"ok": 1}).to_string(),
            },
            KeepJobs::ALL,
            true,
        ),
        (
            Outcome::Completed {
                returnvalue: "2".into(),
            },
            gone,
            true,
        ),
        (
            Outcome::Failed {
                reason: "boom".into(),
                stacktrace: "[\"Error: boom\"]".into(),
            },
            KeepJobs::ALL,
            true,
        ),
        (
            Outcome::Completed {
                returnvalue: "null".into(),
            },
            KeepJobs::ALL,
            false,
        ),
    ]
}

fn requests<'a>(
    held: &'a [Job],
    outcomes: &'a [(Outcome, KeepJobs, bool)],
    claims: &'a [ClaimArgs],
) -> Vec<MoveToFinished<'a>> {
    held.iter()
        .zip(outcomes)
        .zip(claims)
        .enumerate()
        .map(
            |(i, ((job, (outcome, keep, fetch_next)), claim))| MoveToFinished {
                now_ms: NOW + 10 + i as u64,
                job_id: &job.id,
                outcome,
                keep: *keep,
                attempts: 1,
                fetch_next: *fetch_next,
                attempts_made: job.attempts_made,
                metrics_points: Some(10),
                dedup_id: job.dedup_id.as_deref(),
                has_parent: job.has_parent,
                claim,
            },
        )
        .collect()
}

fn claimed_id(r: &Result<Claim, Error>) -> Option<String> {
    match r {
        Ok(Claim::Job(j)) => Some(j.id.clone()),
        Ok(_) => None,
        Err(e) => panic!("finish refused: {e}"),
    }
}

/// Everything the finishes can touch, per queue.
async fn snapshot(q: &mut TestQueue) -> String {
    let keys = q.keys.clone();
    let mut out = String::new();
    for id in 1..=6 {
        let id = id.to_string();
        out += &format!("job {id}: {:?}\n", hgetall(q, &keys.job(&id)).await);
        out += &format!("lock {id}: {}\n", q.exists(&keys.lock(&id)).await);
    }
    out += &format!("events: {:?}\n", q.events().await);
    out += &format!("completed: {:?}\n", zrange_scores(q, &keys.completed).await);
    out += &format!("failed: {:?}\n", zrange_scores(q, &keys.failed).await);
    out += &format!("active: {:?}\n", q.lrange(&keys.active).await);
    out += &format!("wait: {:?}\n", q.lrange(&keys.wait).await);
    let stalled: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&keys.stalled)
        .query_async(&mut q.con)
        .await
        .unwrap();
    out += &format!("stalled: {stalled:?}\n");
    out += &format!(
        "dedup key: {}\n",
        q.exists(&format!("{}de:d3", keys.base)).await
    );
    for m in ["completed", "failed"] {
        out += &format!(
            "metrics {m}: {:?}\n",
            hgetall(q, &format!("{}metrics:{m}", keys.base)).await
        );
    }
    out
}

/// The same four finishes (kept, deleted at once, failed with a deduplication id, no
/// fetch-next) on two identical queues: one call each on the first, one batch on the second.
/// Every job hash, lock, event (names, fields and order), finished set with scores, list,
/// stalled mark, deduplication key and metric ends up the same, and so do the replies.
#[tokio::test]
async fn a_batch_leaves_redis_as_the_same_finishes_one_by_one() {
    let server = RedisServer::start();
    let mut one = TestQueue::new(&server, "singles").await;
    let mut many = TestQueue::new(&server, "batch").await;
    let outcomes = outcomes();
    let claims: Vec<ClaimArgs> = ["t1", "t2", "t3", "t4"]
        .into_iter()
        .map(claim_args)
        .collect();

    let held = setup(&mut one).await;
    assert_eq!(held[2].dedup_id.as_deref(), Some("d3"));
    let keys = one.keys.clone();
    let mut singles = Vec::new();
    for r in requests(&held, &outcomes, &claims) {
        singles.push(r.call(&mut one.con, &keys).await);
    }

    let held = setup(&mut many).await;
    let keys = many.keys.clone();
    let jobs = requests(&held, &outcomes, &claims);
    let batch = MoveToFinishedBatch { jobs: &jobs }
        .call(&mut many.con, &keys)
        .await
        .unwrap();

    let ids = |rs: &[Result<Claim, Error>]| rs.iter().map(claimed_id).collect::<Vec<_>>();
    assert_eq!(
        ids(&singles),
        vec![Some("5".to_string()), Some("6".to_string()), None, None]
    );
    assert_eq!(ids(&batch), ids(&singles));
    let (a, b) = (snapshot(&mut one).await, snapshot(&mut many).await);
    assert_eq!(a, b);
    // The comparison is not vacuous: the finishes did what they say.
    assert!(a.contains("failed: [(\"3\""), "{a}");
    assert!(a.contains("dedup key: false"), "{a}");
    assert!(a.contains("stalled: []"), "{a}");
    assert!(a.contains("active: [\"6\", \"5\"]"), "{a}");
}

/// A job whose lock another worker holds is refused with its code; the jobs before and after
/// it in the batch finish (and claim) as if it were not there, and it is left as it was.
#[tokio::test]
async fn a_lost_lock_in_a_batch_refuses_only_that_job() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "lostlock").await;
    for _ in 0..4 {
        q.add(NewJob::new(json!({}))).await;
    }
    let held = [
        claim(&mut q, "t1").await,
        claim(&mut q, "t2").await,
        claim(&mut q, "t3").await,
    ];
    let keys = q.keys.clone();
    let _: () = redis::cmd("SET")
        .arg(keys.lock("2"))
        .arg("someone-else")
        .query_async(&mut q.con)
        .await
        .unwrap();
    let outcomes: Vec<(Outcome, KeepJobs, bool)> = (0..3)
        .map(|_| {
            (
                Outcome::Completed {
                    returnvalue: "1".into(),
                },
                KeepJobs::ALL,
                true,
            )
        })
        .collect();
    let claims: Vec<ClaimArgs> = ["t1", "t2", "t3"].into_iter().map(claim_args).collect();
    let jobs = requests(&held, &outcomes, &claims);
    let results = MoveToFinishedBatch { jobs: &jobs }
        .call(&mut q.con, &keys)
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(claimed_id(&results[0]), Some("4".to_string()));
    assert!(
        matches!(
            &results[1],
            Err(Error::Script {
                code: ScriptCode::LockMismatch,
                job_id,
                ..
            }) if job_id == "2"
        ),
        "{:?}",
        results[1]
    );
    assert_eq!(claimed_id(&results[2]), None, "nothing left to claim");
    assert_eq!(q.zrange(&keys.completed).await, vec!["1", "3"]);
    let mut active = q.lrange(&keys.active).await;
    active.sort();
    assert_eq!(active, vec!["2", "4"]);
    assert_eq!(q.hget("2", "finishedOn").await, None);
    let lock: Option<String> = redis::cmd("GET")
        .arg(keys.lock("2"))
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert_eq!(lock.as_deref(), Some("someone-else"));
    assert_eq!(q.events_of("2").await, vec!["added", "waiting", "active"]);
}

/// How many script calls (`EVALSHA`, `EVAL`) Redis has run since the last `CONFIG RESETSTAT`.
async fn script_calls(q: &mut TestQueue) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut q.con)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// A busy worker (noop jobs, concurrency 16 and 64) finishes its jobs in batches: fewer
/// script calls than jobs, claims included, so batches did carry several finishes. Every
/// job still ends exactly once: one `active` and one `completed` event each, in that order
/// after its `added`/`waiting`, its return value stored, nothing left active.
#[tokio::test]
async fn a_busy_worker_batches_its_finishes_and_ends_each_job_once() {
    use std::sync::Arc;

    use fetch_worker::processors::Noop;

    const JOBS: usize = 400;
    for concurrency in [16, 64] {
        let server = RedisServer::start();
        let mut q = TestQueue::new(&server, "busy").await;
        let mut ids = Vec::new();
        for i in 0..JOBS {
            ids.push(q.add(NewJob::new(json!({"i": i}))).await);
        }
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut q.con)
            .await
            .unwrap();
        let mut opts = q.options();
        opts.concurrency = concurrency;
        let summary = q.drain(opts, Arc::new(Noop)).await;
        let calls = script_calls(&mut q).await;
        assert!(
            calls < JOBS as u64,
            "concurrency {concurrency}: {calls} script calls for {JOBS} jobs"
        );
        assert_eq!(summary.completed, JOBS as u64);
        let keys = q.keys.clone();
        assert_eq!(q.zcard(&keys.completed).await, JOBS as u64);
        assert_eq!(q.llen(&keys.active).await, 0);
        let events = q.events().await;
        for (i, id) in ids.iter().enumerate() {
            let of_job: Vec<&str> = events
                .iter()
                .filter(|(_, f)| f.iter().any(|(k, v)| k == "jobId" && v == id))
                .map(|(n, _)| n.as_str())
                .collect();
            assert_eq!(
                of_job,
                ["added", "waiting", "active", "completed"],
                "concurrency {concurrency}, job {id}"
            );
            let rv: serde_json::Value =
                serde_json::from_str(&q.hget(id, "returnvalue").await.unwrap()).unwrap();
            assert_eq!(rv, json!({"processed": true, "echo": {"i": i}}));
        }
    }
}
