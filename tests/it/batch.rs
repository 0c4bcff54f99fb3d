//! `moveToFinishedBatch`: a batch of finishes leaves Redis as the same finishes made one call
//! at a time (each job's fields and events alike; the claims come after all the ends), and a
//! job it refuses does not stop the others.

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
    // Written by the test's add at its own time: it differs between queues.
    h.remove("timestamp");
    // A batch claims at once, at its latest finish's time: compared on its own.
    h.remove("processedOn");
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

/// `n` plain completions: return value 1, kept, each with fetch-next.
fn completions(n: usize) -> Vec<(Outcome, KeepJobs, bool)> {
    let done = || Outcome::Completed {
        returnvalue: "1".into(),
    };
    (0..n).map(|_| (done(), KeepJobs::ALL, true)).collect()
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

/// An event as `TestQueue::events` reads it: its name, then its other fields in order.
type Event = (String, Vec<(String, String)>);

/// Everything the finishes can touch, per queue.
async fn snapshot(q: &mut TestQueue) -> String {
    let keys = q.keys.clone();
    let mut out = String::new();
    for id in 1..=6 {
        let id = id.to_string();
        out += &format!("job {id}: {:?}\n", hgetall(q, &keys.job(&id)).await);
        out += &format!("lock {id}: {}\n", q.exists(&keys.lock(&id)).await);
    }
    // Each job's events in order; a batch runs all its ends before its claims, so the
    // interleaving of different jobs' events differs from single calls.
    let mut by_job: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for (name, fields) in q.events().await {
        let id = fields
            .iter()
            .find(|(k, _)| k == "jobId")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        by_job.entry(id).or_default().push((name, fields));
    }
    out += &format!("events by job: {by_job:?}\n");
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

    // Singles claim at each finish's time, the batch at the latest time of the finishes
    // that asked for a next job (job 3's, which found none left).
    let at = |ms: u64| Some(ms.to_string());
    assert_eq!(one.hget("5", "processedOn").await, at(NOW + 10));
    assert_eq!(one.hget("6", "processedOn").await, at(NOW + 11));
    assert_eq!(many.hget("5", "processedOn").await, at(NOW + 12));
    assert_eq!(many.hget("6", "processedOn").await, at(NOW + 12));

    // The batch's stream: every end (in job order), then the claims' `active` events.
    let names: Vec<String> = many
        .events()
        .await
        .into_iter()
        .skip_while(|(name, _)| name != "completed")
        .map(|(name, f)| format!("{name} {}", f[0].1))
        .collect();
    assert_eq!(
        names,
        [
            "completed 1",
            "completed 2",
            "failed 3",
            "retries-exhausted 3",
            "completed 4",
            "active 5",
            "active 6"
        ]
    );
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
    let outcomes = completions(3);
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

/// What a batch's claim meets: the queue state set up after the four jobs are held.
#[derive(Debug, Clone, Copy)]
enum Ahead {
    /// Two jobs wait; three more are prioritized (scores 3, 1, 2).
    WaitThenPrioritized,
    /// One job waits; a delayed job is already due at the claim's time.
    DueDelayedJob,
    /// Nothing waits; a delayed job is due far in the future.
    OnlyALaterDelayedJob,
    /// Jobs wait, but the worker's limiter (5 per minute) has 3 used.
    RateLimited,
    /// Jobs wait, but the queue is paused.
    Paused,
    /// A BullMQ 4 marker (`0:<ts>`) is next in `wait`, then four jobs: the batch pops the
    /// marker with three jobs, drops it and pops once more.
    Bullmq4Marker,
}

/// The queue's state a claim can change, and each job's events in order.
async fn claim_state(q: &mut TestQueue) -> String {
    let keys = q.keys.clone();
    let mut out = String::new();
    for id in 1..=9 {
        let id = id.to_string();
        let lock: Option<String> = redis::cmd("GET")
            .arg(keys.lock(&id))
            .query_async(&mut q.con)
            .await
            .unwrap();
        out += &format!(
            "job {id}: lock {lock:?}, ats {:?}, pb {:?}, delay {:?}\n",
            q.hget(&id, "ats").await,
            q.hget(&id, "pb").await,
            q.hget(&id, "delay").await,
        );
        out += &format!("events {id}: {:?}\n", q.events_of(&id).await);
    }
    out += &format!("active: {:?}\n", q.lrange(&keys.active).await);
    out += &format!("wait: {:?}\n", q.lrange(&keys.wait).await);
    out += &format!("prioritized: {:?}\n", q.zrange(&keys.prioritized).await);
    out += &format!("delayed: {:?}\n", q.zrange(&keys.delayed).await);
    let used: Option<String> = redis::cmd("GET")
        .arg(&keys.limiter)
        .query_async(&mut q.con)
        .await
        .unwrap();
    out += &format!("limiter: {used:?}\n");
    out
}

/// Holds jobs 1-4 (tokens t1-t4), then sets up what the claims will meet.
async fn hold_four_then(q: &mut TestQueue, ahead: Ahead) -> Vec<Job> {
    for _ in 0..4 {
        q.add(NewJob::new(json!({}))).await;
    }
    let mut held = Vec::new();
    for t in ["t1", "t2", "t3", "t4"] {
        held.push(claim(q, t).await);
    }
    let keys = q.keys.clone();
    let later = json!({"attempts": 0, "delay": 1_000_000_000_000u64});
    match ahead {
        Ahead::WaitThenPrioritized => {
            q.add(NewJob::new(json!({}))).await;
            q.add(NewJob::new(json!({}))).await;
            for priority in [3, 1, 2] {
                q.add(NewJob::new(json!({})).opts(json!({"attempts": 0, "priority": priority})))
                    .await;
            }
        }
        Ahead::DueDelayedJob => {
            q.add(NewJob::new(json!({}))).await;
            q.add(NewJob::new(json!({})).opts(json!({"attempts": 0, "delay": 1000})))
                .await;
        }
        Ahead::OnlyALaterDelayedJob => {
            q.add(NewJob::new(json!({})).opts(later)).await;
        }
        Ahead::RateLimited => {
            for _ in 0..4 {
                q.add(NewJob::new(json!({}))).await;
            }
            let _: () = redis::cmd("SET")
                .arg(&keys.limiter)
                .arg(3)
                .arg("PX")
                .arg(60_000)
                .query_async(&mut q.con)
                .await
                .unwrap();
        }
        Ahead::Paused => {
            for _ in 0..2 {
                q.add(NewJob::new(json!({}))).await;
            }
            q.set_meta("paused", 1).await;
        }
        Ahead::Bullmq4Marker => {
            for _ in 0..4 {
                q.add(NewJob::new(json!({}))).await;
            }
            let _: () = redis::cmd("RPUSH")
                .arg(&keys.wait)
                .arg("0:1")
                .query_async(&mut q.con)
                .await
                .unwrap();
        }
    }
    held
}

/// When the earliest delayed job is due (ms), as the claims read it; 0 when none is.
async fn first_due(q: &mut TestQueue) -> u64 {
    let first: Vec<(String, f64)> = zrange_scores(q, &q.keys.delayed.clone()).await;
    first
        .first()
        .map_or(0, |(_, score)| (*score / 4096.0) as u64)
}

/// A reply as the slot reads it (a rate limit's ttl varies with the clock; its kind is kept).
fn reply_kind(r: &Result<Claim, Error>) -> String {
    match r {
        Ok(Claim::Job(j)) => format!("job {}", j.id),
        Ok(Claim::RateLimited(_)) => "rate limited".into(),
        Ok(Claim::NextDelayedAt(at)) => format!("next delayed at {at}"),
        Ok(Claim::Empty) => "empty".into(),
        Err(e) => format!("refused: {e}"),
    }
}

/// A batch's one claim for all its slots hands out the jobs, and tells the slots left over
/// why, exactly as the slots' own claims one after the other would: wait before prioritized
/// (lowest score first), due delayed jobs promoted first, a later delayed job's due time, the
/// worker's rate limit (2 of the 4 slots served), a pause, a BullMQ 4 marker (dropped). Locks,
/// `ats`, `pb`, each job's events, every list and set and the limiter's count end up the same.
#[tokio::test]
async fn a_batch_claims_for_its_slots_as_their_own_claims_would() {
    let server = RedisServer::start();
    for (n, ahead) in [
        Ahead::WaitThenPrioritized,
        Ahead::DueDelayedJob,
        Ahead::OnlyALaterDelayedJob,
        Ahead::RateLimited,
        Ahead::Paused,
        Ahead::Bullmq4Marker,
    ]
    .into_iter()
    .enumerate()
    {
        let mut one = TestQueue::new(&server, &format!("singles{n}")).await;
        let mut many = TestQueue::new(&server, &format!("batch{n}")).await;
        let claims: Vec<ClaimArgs> = ["t1", "t2", "t3", "t4"]
            .into_iter()
            .map(|t| ClaimArgs {
                limiter: Some((5, 60_000)),
                ..claim_args(t)
            })
            .collect();
        let outcomes = completions(4);

        let held = hold_four_then(&mut one, ahead).await;
        let keys = one.keys.clone();
        let mut singles = Vec::new();
        for mut r in requests(&held, &outcomes, &claims) {
            // One time for all, so that both claim at the same time.
            r.now_ms = NOW + 20;
            singles.push(reply_kind(&r.call(&mut one.con, &keys).await));
        }

        let held = hold_four_then(&mut many, ahead).await;
        let keys = many.keys.clone();
        let mut jobs = requests(&held, &outcomes, &claims);
        for r in &mut jobs {
            r.now_ms = NOW + 20;
        }
        let batch: Vec<String> = MoveToFinishedBatch { jobs: &jobs }
            .call(&mut many.con, &keys)
            .await
            .unwrap()
            .iter()
            .map(reply_kind)
            .collect();

        // A later delayed job's due time is its add's time plus its delay: named, not compared.
        let (due_one, due_many) = (first_due(&mut one).await, first_due(&mut many).await);
        let named = |replies: &[String], due: u64| -> Vec<String> {
            replies
                .iter()
                .map(|r| r.replace(&format!("at {due}"), "at its due time"))
                .collect()
        };
        let (singles, batch) = (named(&singles, due_one), named(&batch, due_many));
        assert_eq!(batch, singles, "{ahead:?}");
        let (a, b) = (claim_state(&mut one).await, claim_state(&mut many).await);
        assert_eq!(a, b, "{ahead:?}");
        // Not vacuous: each case met what it sets up.
        let expected: [&str; 4] = match ahead {
            Ahead::WaitThenPrioritized => ["job 5", "job 6", "job 8", "job 9"],
            Ahead::DueDelayedJob => ["job 5", "job 6", "empty", "empty"],
            Ahead::OnlyALaterDelayedJob => ["next delayed at its due time"; 4],
            Ahead::RateLimited => ["job 5", "job 6", "rate limited", "rate limited"],
            Ahead::Paused => ["empty"; 4],
            Ahead::Bullmq4Marker => ["job 5", "job 6", "job 7", "job 8"],
        };
        assert_eq!(batch, expected, "{ahead:?}");
        if expected[0] == "job 5" {
            assert!(b.contains("job 5: lock Some(\"t1\")"), "{ahead:?}: {b}");
        }
    }
}

/// Under a global concurrency, a batch counts all its ends before it claims: with a limit of
/// 2 and four jobs ending, the first two slots get the next jobs and the others are told the
/// queue is full ("empty"). One call at a time would have served the last two slots instead
/// (the first ends still saw three jobs active); either way no more than 2 jobs are active.
#[tokio::test]
async fn a_batch_claims_no_more_than_the_global_concurrency() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "global").await;
    let held = hold_four_then(&mut q, Ahead::DueDelayedJob).await;
    let keys = q.keys.clone();
    for _ in 0..3 {
        q.add(NewJob::new(json!({}))).await;
    }
    q.set_meta("concurrency", 2).await;
    let claims: Vec<ClaimArgs> = ["t1", "t2", "t3", "t4"]
        .into_iter()
        .map(claim_args)
        .collect();
    let outcomes = completions(4);
    let jobs = requests(&held, &outcomes, &claims);
    let replies: Vec<String> = MoveToFinishedBatch { jobs: &jobs }
        .call(&mut q.con, &keys)
        .await
        .unwrap()
        .iter()
        .map(reply_kind)
        .collect();
    // Job 6, the due delayed job, was promoted to the far end of `wait`.
    assert_eq!(replies, ["job 5", "job 7", "empty", "empty"]);
    assert_eq!(q.lrange(&keys.active).await, ["7", "5"]);
    assert_eq!(q.lrange(&keys.wait).await, ["6", "9", "8"]);
}
