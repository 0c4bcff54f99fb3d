//! The scheduler script (`updateJobScheduler-12`) and the rate-limit hand-back, asserted on
//! the Redis state and events they leave. The Node interop suite
//! (`node-producer-example/test/schedulers.test.js`, `limiter.test.js`) checks the same
//! behaviour end to end against Node's own worker.

use fetch_worker::bullmq::scripts::move_job_from_active_to_wait::MoveJobFromActiveToWait;
use fetch_worker::bullmq::scripts::move_to_active::MoveToActive;
use fetch_worker::bullmq::scripts::update_job_scheduler::UpdateJobScheduler;
use fetch_worker::bullmq::scripts::{Claim, ClaimArgs};
use fetch_worker::bullmq::{Compat, QueueKeys};
use serde_json::{Value, json};

use crate::support::{RedisServer, TestQueue, now_ms};

/// Writes a scheduler `sid` with `every` ms and its iteration due at `at`, as
/// `Queue.upsertJobScheduler` leaves them; returns the iteration's id.
async fn every_scheduler(
    q: &mut TestQueue,
    sid: &str,
    every: u64,
    at: u64,
    version: &str,
) -> String {
    let k = q.keys.clone();
    let id = format!("repeat:{sid}:{at}");
    let opts = json!({"repeat": {"every": every, "count": 1}, "jobId": id, "repeatJobKey": sid,
                      "delay": 0, "timestamp": at, "attempts": 2});
    let mut p = redis::pipe();
    p.hset_multiple(&k.meta, &[("version", version)]).ignore();
    p.zadd(&k.repeat, sid, at).ignore();
    p.hset_multiple(
        format!("{}:{sid}", k.repeat),
        &[
            ("name", "tick"),
            ("every", &every.to_string()),
            ("offset", &(at % every).to_string()),
            ("ic", "1"),
        ],
    )
    .ignore();
    p.hset_multiple(
        k.job(&id),
        &[
            ("name", "tick"),
            ("data", r#"{"x":1}"#),
            ("opts", &opts.to_string()),
            ("timestamp", &at.to_string()),
            ("delay", "0"),
            ("priority", "0"),
            ("rjk", sid),
        ],
    )
    .ignore();
    p.lpush(&k.wait, &id).ignore();
    let () = p.query_async(&mut q.con).await.unwrap();
    id
}

async fn schedule(
    q: &mut TestQueue,
    sid: &str,
    producer: &str,
    now: u64,
    count: u64,
) -> Option<String> {
    let keys: QueueKeys = q.keys.clone();
    UpdateJobScheduler {
        now_ms: now,
        scheduler_id: sid,
        producer_id: producer,
        pattern_next_ms: None,
        count,
        compat: Compat::Auto,
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap()
}

async fn zscore(q: &mut TestQueue, key: &str, member: &str) -> Option<u64> {
    redis::cmd("ZSCORE")
        .arg(key)
        .arg(member)
        .query_async(&mut q.con)
        .await
        .unwrap()
}

async fn hget_key(q: &mut TestQueue, key: &str, field: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query_async(&mut q.con)
        .await
        .unwrap()
}

/// The latest iteration adds the next one: delayed at the next slot, the template copied,
/// `repeat.count` and `ic` advanced, events `added` + `delayed`; BullMQ 5 rules also stamp
/// `nrjid` on the producer. A second call (the producer is no longer the latest) does nothing.
#[tokio::test]
async fn the_latest_iteration_schedules_the_next_one_once() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "sched").await;
    let now = now_ms();
    let first = every_scheduler(&mut q, "tick", 400, now, "bullmq:5.81.5").await;
    let next = schedule(&mut q, "tick", &first, now + 5, 2).await;
    let next_id = format!("repeat:tick:{}", now + 400);
    assert_eq!(next.as_deref(), Some(next_id.as_str()));

    let k = q.keys.clone();
    assert_eq!(zscore(&mut q, &k.repeat, "tick").await, Some(now + 400));
    assert_eq!(
        hget_key(&mut q, &format!("{}:tick", k.repeat), "ic")
            .await
            .as_deref(),
        Some("2")
    );
    assert_eq!(
        hget_key(&mut q, &format!("{}:tick", k.repeat), "data")
            .await
            .as_deref(),
        Some(r#"{"x":1}"#)
    );
    assert_eq!(
        q.hget(&first, "nrjid").await.as_deref(),
        Some(next_id.as_str())
    );
    assert_eq!(q.zrange(&k.delayed).await, vec![next_id.clone()]);
    assert_eq!(q.hget(&next_id, "rjk").await.as_deref(), Some("tick"));
    assert_eq!(q.hget(&next_id, "delay").await.as_deref(), Some("395"));
    assert_eq!(
        q.hget(&next_id, "data").await.as_deref(),
        Some(r#"{"x":1}"#)
    );
    let opts: Value = serde_json::from_str(&q.hget(&next_id, "opts").await.unwrap()).unwrap();
    assert_eq!(opts["jobId"], json!(next_id));
    assert_eq!(opts["repeat"], json!({"every": 400, "count": 2}));
    assert_eq!(opts["attempts"], json!(2), "the template options are kept");
    assert_eq!(opts["delay"], json!(395));
    assert!(
        opts.get("prevMillis").is_none(),
        "every schedules carry no prevMillis"
    );
    assert_eq!(q.events_of(&next_id).await, vec!["added", "delayed"]);

    // The first iteration again (a retry): no longer the latest, nothing happens.
    assert_eq!(schedule(&mut q, "tick", &first, now + 50, 2).await, None);
    assert_eq!(q.zcard(&k.delayed).await, 1);
    assert_eq!(
        hget_key(&mut q, &format!("{}:tick", k.repeat), "ic")
            .await
            .as_deref(),
        Some("2")
    );
}

/// A claim long after the slot skips the missed slots (keeping the offset), and a next job
/// that exists already is reported as `duplicated` without any change; BullMQ 6 rules write
/// no `nrjid`.
#[tokio::test]
async fn missed_slots_are_skipped_and_an_existing_next_job_is_a_duplicate() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "sched").await;
    let at = 1_795_971_600_100;
    let first = every_scheduler(&mut q, "late", 400, at, "bullmq:6.7.0").await;
    // Claimed 1000 ms late: slots at +400 and +800 are gone; the next is +1200.
    let next = schedule(&mut q, "late", &first, at + 1_000, 2)
        .await
        .unwrap();
    assert_eq!(next, format!("repeat:late:{}", at + 1_200));
    assert_eq!(
        q.hget(&first, "nrjid").await,
        None,
        "BullMQ 6 writes no nrjid"
    );

    // Put the scheduler back as if the first iteration were still the latest: the next job
    // exists, so only `duplicated` is emitted.
    let k = q.keys.clone();
    let () = redis::cmd("ZADD")
        .arg(&k.repeat)
        .arg(at)
        .arg("late")
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert_eq!(schedule(&mut q, "late", &first, at + 1_000, 2).await, None);
    assert_eq!(
        q.events_of(&next).await,
        vec!["added", "delayed", "duplicated"]
    );
    assert_eq!(q.zcard(&k.delayed).await, 1);
}

/// A removed scheduler schedules nothing.
#[tokio::test]
async fn a_removed_scheduler_schedules_nothing() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "sched").await;
    let now = now_ms();
    let first = every_scheduler(&mut q, "gone", 400, now, "bullmq:5.81.5").await;
    let k = q.keys.clone();
    let () = redis::cmd("ZREM")
        .arg(&k.repeat)
        .arg("gone")
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert_eq!(schedule(&mut q, "gone", &first, now, 2).await, None);
    assert_eq!(q.zcard(&k.delayed).await, 0);
}

/// A processor's rate limit: the hand-back returns the limiter's remaining time, counts no
/// attempt, and puts the job at the front of `wait`.
#[tokio::test]
async fn rate_limited_hand_back_returns_the_limiter_ttl() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "ratelimit").await;
    let a = q.add(crate::support::NewJob::new(json!({}))).await;
    let b = q.add(crate::support::NewJob::new(json!({}))).await;
    let keys = q.keys.clone();
    let args = ClaimArgs {
        token: "w:1".into(),
        lock: std::time::Duration::from_secs(30),
        worker_name: None,
        limiter: None,
        compat: Compat::Auto,
    };
    let claimed = MoveToActive {
        now_ms: now_ms(),
        claim: &args,
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap();
    assert!(matches!(claimed, Claim::Job(ref j) if j.id == a));
    let () = redis::cmd("SET")
        .arg(&keys.limiter)
        .arg("9007199254740991")
        .arg("PX")
        .arg(2_000)
        .query_async(&mut q.con)
        .await
        .unwrap();
    let ttl = MoveJobFromActiveToWait {
        job_id: &a,
        token: "w:1",
        compat: Compat::Auto,
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap();
    assert!(ttl > 1_500 && ttl <= 2_000, "ttl {ttl}");
    assert_eq!(
        q.lrange(&keys.wait).await,
        vec![b.clone(), a.clone()],
        "a is at the front (right end)"
    );
    assert_eq!(q.hget(&a, "atm").await, None, "no attempt counted");
    assert_eq!(
        q.events_of(&a).await.last().map(String::as_str),
        Some("waiting")
    );
    // A limiting worker claims nothing until the limit ends.
    let limited = ClaimArgs {
        limiter: Some((10, 1_000)),
        ..args
    };
    let held = MoveToActive {
        now_ms: now_ms(),
        claim: &limited,
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap();
    assert!(
        matches!(held, Claim::RateLimited(ms) if ms > 1_000),
        "{held:?}"
    );
}
