//! Every script path, asserted on the Redis state and events it leaves.

use fetch_worker::bullmq::scripts::Claim;
use fetch_worker::bullmq::scripts::add_log::AddLog;
use fetch_worker::bullmq::scripts::extend_locks::ExtendLocks;
use fetch_worker::bullmq::scripts::move_job_from_active_to_wait::MoveJobFromActiveToWait;
use fetch_worker::bullmq::scripts::move_stalled_jobs_to_wait::MoveStalledJobsToWait;
use fetch_worker::bullmq::scripts::move_to_active::MoveToActive;
use fetch_worker::bullmq::scripts::move_to_delayed::{AttemptFailure, MoveToDelayed};
use fetch_worker::bullmq::scripts::move_to_finished::{MoveToFinished, Outcome};
use fetch_worker::bullmq::scripts::retry_job::RetryJob;
use fetch_worker::bullmq::scripts::update_progress::UpdateProgress;
use fetch_worker::bullmq::{Compat, Error, KeepJobs, ScriptCode};
use serde_json::json;

use crate::support::{NewJob, RedisServer, TestQueue, claim_args, now_ms};

async fn claim(q: &mut TestQueue, token: &str) -> Claim {
    let keys = q.keys.clone();
    MoveToActive {
        now_ms: now_ms(),
        claim: &claim_args(token),
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap()
}

fn job_id(c: Claim) -> String {
    match c {
        Claim::Job(j) => j.id,
        other => panic!("expected a job, got {other:?}"),
    }
}

async fn complete(
    q: &mut TestQueue,
    id: &str,
    token: &str,
    keep: KeepJobs,
    fetch_next: bool,
) -> Result<Claim, Error> {
    let keys = q.keys.clone();
    let out = Outcome::Completed {
        returnvalue: json!({"ok": id}).to_string(),
    };
    MoveToFinished {
        now_ms: now_ms(),
        job_id: id,
        outcome: &out,
        keep,
        attempts: 1,
        fetch_next,
        attempts_made: 0,
        metrics_points: None,
        // Plain jobs: no deduplication id, no parent.
        dedup_id: None,
        has_parent: false,
        claim: &claim_args(token),
    }
    .call(&mut q.con, &keys)
    .await
}

/// An immediate retry of `id` (held with `token`) through `retryJob`.
async fn retry(q: &mut TestQueue, id: &str, token: &str, lifo: bool, reason: &str) {
    let keys = q.keys.clone();
    RetryJob {
        now_ms: now_ms(),
        job_id: id,
        token,
        lifo,
        reason,
        stacktrace: "[]",
        compat: Compat::Auto,
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap();
}

/// A backoff retry of `id` (held with `token`) through `moveToDelayed`, due `ms` after `now`.
async fn delay(
    q: &mut TestQueue,
    now: u64,
    id: &str,
    ms: u64,
    reason: &str,
    fetch_next: bool,
    token: &str,
) -> Claim {
    let keys = q.keys.clone();
    MoveToDelayed {
        now_ms: now,
        job_id: id,
        delay_ms: ms,
        failure: Some(AttemptFailure {
            reason,
            stacktrace: "[]",
        }),
        fetch_next,
        claim: &claim_args(token),
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap()
}

/// A claim moves the job from wait to active, locks it with the token, stamps processedOn,
/// ats and pb, emits `active`, and leaves the wake marker for the next worker.
#[tokio::test]
async fn claim_moves_job_to_active_locked_and_stamped() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "claim").await;
    let id = q.add(NewJob::new(json!({"branch": "BMC"}))).await;
    let c = claim(&mut q, "tok:1").await;
    let Claim::Job(job) = c else { panic!("no job") };
    assert_eq!(
        (job.id.as_str(), job.name.as_str()),
        (id.as_str(), "fetch-job")
    );
    assert_eq!(job.data, json!({"branch": "BMC"}));
    assert_eq!(job.attempts_started, 1);
    assert_eq!(q.lrange(&q.keys.active.clone()).await, vec![id.clone()]);
    assert_eq!(q.llen(&q.keys.wait.clone()).await, 0);
    let lock: String = redis::cmd("GET")
        .arg(q.keys.lock(&id))
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert_eq!(lock, "tok:1");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(q.keys.lock(&id))
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert!(ttl > 29_000 && ttl <= 30_000, "{ttl}");
    assert!(q.hget(&id, "processedOn").await.is_some());
    assert_eq!(q.hget(&id, "ats").await.as_deref(), Some("1"));
    assert_eq!(q.hget(&id, "pb").await.as_deref(), Some("w1"));
    let events = q.events().await;
    let active = events
        .iter()
        .find(|(n, _)| n == "active")
        .expect("active event");
    assert!(active.1.contains(&("prev".into(), "waiting".into())));
    let marker: Vec<String> = redis::cmd("ZRANGE")
        .arg(&q.keys.marker)
        .arg(0)
        .arg(-1)
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert_eq!(marker, vec!["0"]);
    let meta: Option<String> = redis::cmd("HGET")
        .arg(&q.keys.meta)
        .arg("opts.maxLenEvents")
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert_eq!(meta.as_deref(), Some("10000"));
}

/// Completing stores returnvalue, finishedOn and atm, releases the lock, scores the job in
/// `completed`, emits `completed` with the JSON value, and `drained` once nothing is left.
#[tokio::test]
async fn complete_stores_result_and_emits_completed_then_drained() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "complete").await;
    let id = q.add(NewJob::new(json!({}))).await;
    job_id(claim(&mut q, "t").await);
    let next = complete(&mut q, &id, "t", KeepJobs::ALL, true)
        .await
        .unwrap();
    assert!(matches!(next, Claim::Empty));
    assert_eq!(q.zrange(&q.keys.completed.clone()).await, vec![id.clone()]);
    assert_eq!(
        q.hget(&id, "returnvalue").await,
        Some(json!({"ok": id}).to_string())
    );
    assert_eq!(q.hget(&id, "atm").await.as_deref(), Some("1"));
    assert!(q.hget(&id, "finishedOn").await.is_some());
    assert!(!q.exists(&q.keys.lock(&id)).await);
    assert_eq!(q.llen(&q.keys.active.clone()).await, 0);
    let names: Vec<String> = q.events().await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["added", "waiting", "active", "completed", "drained"]
    );
    let events = q.events().await;
    assert!(
        events[3]
            .1
            .contains(&("returnvalue".into(), json!({"ok": id}).to_string()))
    );
}

/// Fetch-next claims the following job with the same token in the same call.
#[tokio::test]
async fn finish_with_fetch_next_claims_the_next_job() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "fetchnext").await;
    let a = q.add(NewJob::new(json!({"n": 1}))).await;
    let b = q.add(NewJob::new(json!({"n": 2}))).await;
    assert_eq!(job_id(claim(&mut q, "t").await), a);
    let next = complete(&mut q, &a, "t", KeepJobs::ALL, true)
        .await
        .unwrap();
    assert_eq!(job_id(next), b);
    let lock: String = redis::cmd("GET")
        .arg(q.keys.lock(&b))
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert_eq!(lock, "t");
    // Not drained yet: b is active.
    assert!(!q.events().await.iter().any(|(n, _)| n == "drained"));
}

/// A final failure records the raw reason and stack, emits `failed`, and `retries-exhausted`
/// when the attempts are used up.
#[tokio::test]
async fn final_failure_emits_failed_and_retries_exhausted() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "fail").await;
    let id = q.add(NewJob::new(json!({}))).await;
    job_id(claim(&mut q, "t").await);
    let keys = q.keys.clone();
    let out = Outcome::Failed {
        reason: "boom: it broke".into(),
        stacktrace: "[\"Error: boom\"]".into(),
    };
    MoveToFinished {
        now_ms: now_ms(),
        job_id: &id,
        outcome: &out,
        keep: KeepJobs::ALL,
        attempts: 1,
        fetch_next: false,
        attempts_made: 0,
        metrics_points: None,
        dedup_id: None,
        has_parent: false,
        claim: &claim_args("t"),
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap();
    assert_eq!(q.zrange(&keys.failed).await, vec![id.clone()]);
    assert_eq!(
        q.hget(&id, "failedReason").await.as_deref(),
        Some("boom: it broke")
    );
    assert_eq!(
        q.hget(&id, "stacktrace").await.as_deref(),
        Some("[\"Error: boom\"]")
    );
    let ev = q.events().await;
    let failed = ev.iter().find(|(n, _)| n == "failed").unwrap();
    assert!(
        failed
            .1
            .contains(&("failedReason".into(), "boom: it broke".into()))
    );
    let ex = ev.iter().find(|(n, _)| n == "retries-exhausted").unwrap();
    assert!(ex.1.contains(&("attemptsMade".into(), "1".into())));
}

/// An immediate retry puts the job back in wait, counts the attempt, keeps the reason, and
/// emits `waiting` with prev `active`; LIFO jobs go to the front.
#[tokio::test]
async fn retry_job_returns_job_to_wait_and_counts_the_attempt() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "retry").await;
    let a = q.add(NewJob::new(json!({}))).await;
    let b = q.add(NewJob::new(json!({}))).await;
    job_id(claim(&mut q, "t").await);
    let keys = q.keys.clone();
    retry(&mut q, &a, "t", false, "flaky").await;
    // FIFO: a went to the back, so b is next (wait is consumed from the right).
    assert_eq!(q.lrange(&keys.wait).await, vec![a.clone(), b.clone()]);
    assert_eq!(q.hget(&a, "atm").await.as_deref(), Some("1"));
    assert_eq!(q.hget(&a, "failedReason").await.as_deref(), Some("flaky"));
    assert_eq!(
        q.events_of(&a).await,
        ["added", "waiting", "active", "waiting"]
    );
    // LIFO retry goes to the front.
    assert_eq!(job_id(claim(&mut q, "u").await), b);
    retry(&mut q, &b, "u", true, "again").await;
    assert_eq!(q.lrange(&keys.wait).await, vec![a, b]);
}

/// A backoff retry moves the job to `delayed` with BullMQ's score packing, emits `delayed`
/// with the absolute due time, and a later claim promotes it once due.
#[tokio::test]
async fn move_to_delayed_packs_the_score_and_promotion_brings_it_back() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "delayed").await;
    let id = q.add(NewJob::new(json!({}))).await;
    job_id(claim(&mut q, "t").await);
    let keys = q.keys.clone();
    let now = now_ms();
    let next = delay(&mut q, now, &id, 300, "later", true, "t").await;
    assert!(matches!(next, Claim::Empty));
    let score: f64 = redis::cmd("ZSCORE")
        .arg(&keys.delayed)
        .arg(&id)
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert_eq!(score as u64, (now + 300) * 4096);
    assert_eq!(q.hget(&id, "delay").await.as_deref(), Some("300"));
    assert_eq!(q.hget(&id, "atm").await.as_deref(), Some("1"));
    let ev = q.events().await;
    let d = ev.iter().find(|(n, _)| n == "delayed").unwrap();
    assert!(d.1.contains(&("delay".into(), (now + 300).to_string())));
    // The delay marker names the due time.
    let m: Vec<String> = redis::cmd("ZRANGE")
        .arg(&keys.marker)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert!(m.contains(&"1".to_string()));
    // Not due yet.
    assert!(matches!(claim(&mut q, "u").await, Claim::NextDelayedAt(due) if due == now + 300));
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_eq!(job_id(claim(&mut q, "u").await), id);
    assert!(q.events_of(&id).await.ends_with(&[
        "delayed".into(),
        "waiting".into(),
        "active".into()
    ]));
    assert_eq!(q.hget(&id, "delay").await.as_deref(), Some("0"));
}

/// A processor's deferral (DelayedError) parks the job like a backoff retry but counts no
/// attempt and leaves `failedReason` and `stacktrace` alone; fetch-next still claims the next
/// job in the same call.
#[tokio::test]
async fn deferring_to_delayed_counts_no_attempt() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "defer").await;
    let id = q.add(NewJob::new(json!({}))).await;
    let other = q.add(NewJob::new(json!({}))).await;
    assert_eq!(job_id(claim(&mut q, "t").await), id);
    let keys = q.keys.clone();
    let now = now_ms();
    let claim = claim_args("t");
    let deferral = MoveToDelayed {
        now_ms: now,
        job_id: &id,
        delay_ms: 400,
        failure: None,
        fetch_next: true,
        claim: &claim,
    };
    let next = deferral.call(&mut q.con, &keys).await.unwrap();
    assert_eq!(job_id(next), other, "fetch-next claimed the other job");
    let score: f64 = redis::cmd("ZSCORE")
        .arg(&keys.delayed)
        .arg(&id)
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert_eq!(score as u64, (now + 400) * 4096);
    assert_eq!(q.hget(&id, "delay").await.as_deref(), Some("400"));
    assert_eq!(q.hget(&id, "atm").await, None, "no attempt counted");
    assert_eq!(q.hget(&id, "failedReason").await, None);
    assert_eq!(q.hget(&id, "stacktrace").await, None);
    assert!(q.events_of(&id).await.ends_with(&["delayed".into()]));
    // The lock went with the job: a second move is refused.
    let again = MoveToDelayed {
        fetch_next: false,
        ..deferral
    }
    .call(&mut q.con, &keys)
    .await;
    assert!(again.is_err());
}

/// Two jobs due in the same millisecond keep their order.
#[tokio::test]
async fn delayed_jobs_due_together_keep_fifo_order() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "fifo").await;
    let a = q.add(NewJob::new(json!({}))).await;
    let b = q.add(NewJob::new(json!({}))).await;
    job_id(claim(&mut q, "t").await);
    job_id(claim(&mut q, "u").await);
    let keys = q.keys.clone();
    let now = now_ms();
    delay(&mut q, now, &a, 100, "x", false, "t").await;
    delay(&mut q, now, &b, 100, "x", false, "u").await;
    assert_eq!(q.zrange(&keys.delayed).await, vec![a, b]);
}

/// A job still active without a lock at the second check is stalled: it goes back to the front
/// of wait with `stc` 1 and a `stalled` event; past maxStalledCount it gets `defa`.
#[tokio::test]
async fn stalled_jobs_go_back_to_wait_and_get_deferred_failure_past_the_limit() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "stalled").await;
    let id = q.add(NewJob::new(json!({}))).await;
    let keys = q.keys.clone();
    let stall_check = |q: &mut TestQueue| {
        let keys = keys.clone();
        let mut con = q.con.clone();
        async move {
            let _: () = redis::cmd("DEL")
                .arg(&keys.stalled_check)
                .query_async(&mut con)
                .await
                .unwrap();
            MoveStalledJobsToWait {
                now_ms: now_ms(),
                max_stalled_count: 1,
                interval_ms: 1000,
                compat: Compat::Auto,
            }
            .call(&mut con, &keys)
            .await
            .unwrap()
        }
    };
    for round in 1..=2u32 {
        job_id(claim(&mut q, "t").await);
        // First check only marks candidates.
        assert!(stall_check(&mut q).await.is_empty());
        // The worker dies: its lock expires.
        let _: () = redis::cmd("DEL")
            .arg(keys.lock(&id))
            .query_async(&mut q.con)
            .await
            .unwrap();
        assert_eq!(stall_check(&mut q).await, vec![id.clone()]);
        assert_eq!(q.lrange(&keys.wait).await, vec![id.clone()]);
        assert_eq!(q.hget(&id, "stc").await, Some(round.to_string()));
        let defa = q.hget(&id, "defa").await;
        if round == 1 {
            assert!(defa.is_none());
        } else {
            assert_eq!(
                defa.as_deref(),
                Some("job stalled more than allowable limit")
            );
        }
    }
    let ev = q.events_of(&id).await;
    assert_eq!(ev.iter().filter(|n| *n == "stalled").count(), 2);
    // A job with a live lock is never stalled.
    job_id(claim(&mut q, "t").await);
    assert!(stall_check(&mut q).await.is_empty());
    assert!(stall_check(&mut q).await.is_empty());
    // The throttle key stops a second check within the interval.
    let _: () = redis::cmd("DEL")
        .arg(keys.lock(&id))
        .query_async(&mut q.con)
        .await
        .unwrap();
    let mut con = q.con.clone();
    assert!(
        MoveStalledJobsToWait {
            now_ms: now_ms(),
            max_stalled_count: 1,
            interval_ms: 60_000,
            compat: Compat::Auto,
        }
        .call(&mut con, &keys)
        .await
        .unwrap()
        .is_empty()
    );
    assert!(
        MoveStalledJobsToWait {
            now_ms: now_ms(),
            max_stalled_count: 1,
            interval_ms: 60_000,
            compat: Compat::Auto,
        }
        .call(&mut con, &keys)
        .await
        .unwrap()
        .is_empty()
    );
}

/// Finishing with another worker's token, after the lock expired or after the job was deleted
/// is refused and changes nothing.
#[tokio::test]
async fn finishing_without_the_lock_is_refused() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "lockloss").await;
    let id = q.add(NewJob::new(json!({}))).await;
    job_id(claim(&mut q, "mine").await);
    // The owner renewed for longer than the caller's lock duration.
    let _: () = redis::cmd("SET")
        .arg(q.keys.lock(&id))
        .arg("mine")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut q.con)
        .await
        .unwrap();
    let err = complete(&mut q, &id, "theirs", KeepJobs::ALL, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Script {
                code: ScriptCode::LockMismatch,
                ..
            }
        ),
        "{err}"
    );
    // The owner's lock is left exactly as it was: value and TTL (the caller's is 30 s).
    let lock: Option<String> = redis::cmd("GET")
        .arg(q.keys.lock(&id))
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert_eq!(lock.as_deref(), Some("mine"));
    let ttl: i64 = redis::cmd("PTTL")
        .arg(q.keys.lock(&id))
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert!(ttl > 55_000, "the owner's TTL is kept, got {ttl}");
    let _: () = redis::cmd("DEL")
        .arg(q.keys.lock(&id))
        .query_async(&mut q.con)
        .await
        .unwrap();
    let err = complete(&mut q, &id, "mine", KeepJobs::ALL, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Script {
                code: ScriptCode::LockMissing,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(q.lrange(&q.keys.active.clone()).await, vec![id.clone()]);
    assert_eq!(q.zcard(&q.keys.completed.clone()).await, 0);
    // Renewal reports the lost lock.
    let keys = q.keys.clone();
    let lost = ExtendLocks {
        lock: std::time::Duration::from_secs(1),
        jobs: &[(id.clone(), "mine".into())],
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap();
    assert_eq!(lost, vec![id.clone()]);
    // A job deleted meanwhile (hash and lock gone) is told apart from a lost lock.
    let _: () = redis::cmd("DEL")
        .arg(keys.job(&id))
        .query_async(&mut q.con)
        .await
        .unwrap();
    let err = complete(&mut q, &id, "mine", KeepJobs::ALL, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Script {
                code: ScriptCode::JobMissing,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(q.zcard(&keys.completed).await, 0);
}

/// Renewal extends the lock of the right token and clears the stalled mark.
#[tokio::test]
async fn extend_locks_renews_and_unmarks_stalled() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "extend").await;
    let id = q.add(NewJob::new(json!({}))).await;
    job_id(claim(&mut q, "t").await);
    let keys = q.keys.clone();
    let _: () = redis::cmd("SADD")
        .arg(&keys.stalled)
        .arg(&id)
        .query_async(&mut q.con)
        .await
        .unwrap();
    let lost = ExtendLocks {
        lock: std::time::Duration::from_secs(90),
        jobs: &[(id.clone(), "t".into())],
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap();
    assert!(lost.is_empty());
    let ttl: i64 = redis::cmd("PTTL")
        .arg(keys.lock(&id))
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert!(ttl > 60_000);
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&keys.stalled)
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert!(members.is_empty());
}

/// While paused nothing is claimed, and a retried job goes to `paused` (BullMQ 5's rule), where
/// a resume finds it.
#[tokio::test]
async fn paused_queue_claims_nothing_and_retries_go_to_paused() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "pause").await;
    let a = q.add(NewJob::new(json!({}))).await;
    let b = q.add(NewJob::new(json!({}))).await;
    job_id(claim(&mut q, "t").await);
    let keys = q.keys.clone();
    // A v5 pause: flag plus RENAME wait → paused.
    q.set_meta("paused", 1).await;
    let _: () = redis::cmd("RENAME")
        .arg(&keys.wait)
        .arg(&keys.paused)
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert!(matches!(claim(&mut q, "u").await, Claim::Empty));
    retry(&mut q, &a, "t", false, "x").await;
    assert_eq!(q.lrange(&keys.paused).await, vec![a.clone(), b.clone()]);
    assert_eq!(q.llen(&keys.wait).await, 0);
    // A v5 resume.
    let _: () = redis::cmd("HDEL")
        .arg(&keys.meta)
        .arg("paused")
        .query_async(&mut q.con)
        .await
        .unwrap();
    let _: () = redis::cmd("RENAME")
        .arg(&keys.paused)
        .arg(&keys.wait)
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert_eq!(job_id(claim(&mut q, "u").await), b);
    assert_eq!(job_id(claim(&mut q, "u").await), a);
}

/// Where a retry goes while the queue is paused: `paused` under BullMQ 5's rule, `wait` under
/// 6's. `auto` follows `meta.version`; `5` and `6` override it.
#[tokio::test]
async fn paused_rule_follows_meta_version_unless_overridden() {
    let server = RedisServer::start();
    let cases = [
        (None, Compat::Auto, "paused"),
        (Some("bullmq:5.81.5"), Compat::Auto, "paused"),
        (Some("bullmq:6.7.0"), Compat::Auto, "wait"),
        (Some("bullmq:10.0.1"), Compat::Auto, "wait"),
        (Some("bullmq:6.7.0"), Compat::V5, "paused"),
        (Some("bullmq:5.81.5"), Compat::V6, "wait"),
        (None, Compat::V6, "wait"),
    ];
    for (n, (version, compat, expected)) in cases.into_iter().enumerate() {
        let mut q = TestQueue::new(&server, &format!("rule{n}")).await;
        let id = q.add(NewJob::new(json!({}))).await;
        job_id(claim(&mut q, "t").await);
        let keys = q.keys.clone();
        let mut meta = redis::cmd("HSET");
        meta.arg(&keys.meta).arg("paused").arg(1);
        if let Some(v) = version {
            meta.arg("version").arg(v);
        }
        let _: () = meta.query_async(&mut q.con).await.unwrap();
        RetryJob {
            now_ms: now_ms(),
            job_id: &id,
            token: "t",
            lifo: false,
            reason: "x",
            stacktrace: "[]",
            compat,
        }
        .call(&mut q.con, &keys)
        .await
        .unwrap();
        let (in_wait, in_paused) = (q.llen(&keys.wait).await, q.llen(&keys.paused).await);
        let got = match (in_wait, in_paused) {
            (1, 0) => "wait",
            (0, 1) => "paused",
            other => panic!("case {n}: job in neither or both lists: {other:?}"),
        };
        assert_eq!(got, expected, "case {n}: version {version:?}, {compat:?}");
    }
}

/// Plain jobs beat prioritized ones; lower priority numbers first; one priority is FIFO.
#[tokio::test]
async fn priorities_order_claims() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "prio").await;
    let p5a = q
        .add(NewJob::new(json!({})).opts(json!({"priority": 5})))
        .await;
    let p1 = q
        .add(NewJob::new(json!({})).opts(json!({"priority": 1})))
        .await;
    let p5b = q
        .add(NewJob::new(json!({})).opts(json!({"priority": 5})))
        .await;
    let plain = q.add(NewJob::new(json!({}))).await;
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(job_id(claim(&mut q, "t").await));
    }
    assert_eq!(order, vec![plain, p1, p5a, p5b]);
    // The priority counter is dropped once prioritized is empty.
    assert!(matches!(claim(&mut q, "t").await, Claim::Empty));
    assert!(!q.exists(&q.keys.pc.clone()).await);
}

/// Global concurrency (meta `concurrency`) and a global rate limit (meta `max`/`duration`)
/// hold back claims.
#[tokio::test]
async fn global_concurrency_and_rate_limit_hold_claims_back() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "limits").await;
    for _ in 0..3 {
        q.add(NewJob::new(json!({}))).await;
    }
    let keys = q.keys.clone();
    let _: () = redis::cmd("HSET")
        .arg(&keys.meta)
        .arg("concurrency")
        .arg(1)
        .query_async(&mut q.con)
        .await
        .unwrap();
    job_id(claim(&mut q, "t").await);
    assert!(matches!(claim(&mut q, "t").await, Claim::Empty));
    let _: () = redis::cmd("HDEL")
        .arg(&keys.meta)
        .arg("concurrency")
        .query_async(&mut q.con)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&keys.meta)
        .arg("max")
        .arg(1)
        .arg("duration")
        .arg(5000)
        .query_async(&mut q.con)
        .await
        .unwrap();
    job_id(claim(&mut q, "t").await);
    assert!(matches!(claim(&mut q, "t").await, Claim::RateLimited(ttl) if ttl > 4000));
}

/// removeOnComplete: count 0 deletes the job at once; count N keeps the newest N; age drops
/// old ones.
#[tokio::test]
async fn retention_removes_jobs_by_count_and_age() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "keep").await;
    let keys = q.keys.clone();
    let gone = q.add(NewJob::new(json!({}))).await;
    job_id(claim(&mut q, "t").await);
    complete(
        &mut q,
        &gone,
        "t",
        KeepJobs {
            count: 0,
            age: None,
            limit: None,
        },
        false,
    )
    .await
    .unwrap();
    assert!(!q.exists(&keys.job(&gone)).await);
    assert_eq!(q.zcard(&keys.completed).await, 0);
    assert_eq!(
        q.events_of(&gone).await.last().map(String::as_str),
        Some("completed")
    );

    let mut ids = Vec::new();
    for _ in 0..4 {
        let id = q.add(NewJob::new(json!({}))).await;
        job_id(claim(&mut q, "t").await);
        complete(
            &mut q,
            &id,
            "t",
            KeepJobs {
                count: 2,
                age: None,
                limit: None,
            },
            false,
        )
        .await
        .unwrap();
        ids.push(id);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    assert_eq!(q.zrange(&keys.completed).await, ids[2..].to_vec());
    assert!(!q.exists(&keys.job(&ids[0])).await && !q.exists(&keys.job(&ids[1])).await);
    assert!(q.exists(&keys.job(&ids[3])).await);

    // Age: make the kept jobs look old, then finish one more with {age: 1}.
    let _: () = redis::cmd("ZADD")
        .arg(&keys.completed)
        .arg("XX")
        .arg(1)
        .arg(&ids[2])
        .query_async(&mut q.con)
        .await
        .unwrap();
    let last = q.add(NewJob::new(json!({}))).await;
    job_id(claim(&mut q, "t").await);
    complete(
        &mut q,
        &last,
        "t",
        KeepJobs {
            count: -1,
            age: Some(1),
            limit: None,
        },
        false,
    )
    .await
    .unwrap();
    assert_eq!(q.zrange(&keys.completed).await, vec![ids[3].clone(), last]);
    assert!(!q.exists(&keys.job(&ids[2])).await);
}

/// The event stream is trimmed to about `opts.maxLenEvents`.
#[tokio::test]
async fn events_are_trimmed_to_max_len() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "trim").await;
    let keys = q.keys.clone();
    let _: () = redis::cmd("HSET")
        .arg(&keys.meta)
        .arg("opts.maxLenEvents")
        .arg(10)
        .query_async(&mut q.con)
        .await
        .unwrap();
    let id = q.add(NewJob::new(json!({}))).await;
    job_id(claim(&mut q, "t").await);
    for i in 0..500 {
        UpdateProgress {
            job_id: &id,
            progress_json: &i.to_string(),
        }
        .call(&mut q.con, &keys)
        .await
        .unwrap();
    }
    let len: u64 = redis::cmd("XLEN")
        .arg(&keys.events)
        .query_async(&mut q.con)
        .await
        .unwrap();
    // Approximate trimming removes whole stream nodes (100 entries each).
    assert!(len < 200, "stream has {len} entries");
    assert_eq!(q.hget(&id, "progress").await.as_deref(), Some("499"));
}

/// Progress is stored as JSON and announced; log lines are kept, trimmed by keepLogs.
#[tokio::test]
async fn progress_and_logs_are_stored() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "progress").await;
    let keys = q.keys.clone();
    let id = q.add(NewJob::new(json!({}))).await;
    UpdateProgress {
        job_id: &id,
        progress_json: r#"{"step":"listing"}"#,
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap();
    assert_eq!(
        q.hget(&id, "progress").await.as_deref(),
        Some(r#"{"step":"listing"}"#)
    );
    let ev = q.events().await;
    let p = ev.iter().find(|(n, _)| n == "progress").unwrap();
    assert!(p.1.contains(&("data".into(), r#"{"step":"listing"}"#.into())));
    for i in 0..5 {
        AddLog {
            job_id: &id,
            line: &format!("line {i}"),
            keep: Some(3),
        }
        .call(&mut q.con, &keys)
        .await
        .unwrap();
    }
    assert_eq!(
        q.lrange(&keys.logs(&id)).await,
        vec!["line 2", "line 3", "line 4"]
    );
    let err = UpdateProgress {
        job_id: "nope",
        progress_json: "1",
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap_err();
    assert!(matches!(
        err,
        Error::Script {
            code: ScriptCode::JobMissing,
            ..
        }
    ));
}

/// Handing a job back puts it at the front of wait without using an attempt.
#[tokio::test]
async fn hand_back_puts_the_job_in_front_without_an_attempt() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "handback").await;
    let a = q.add(NewJob::new(json!({}))).await;
    let b = q.add(NewJob::new(json!({}))).await;
    job_id(claim(&mut q, "t").await);
    let keys = q.keys.clone();
    MoveJobFromActiveToWait {
        job_id: &a,
        token: "t",
        compat: Compat::Auto,
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap();
    assert_eq!(q.lrange(&keys.wait).await, vec![b, a.clone()]);
    assert_eq!(q.hget(&a, "atm").await, None);
    assert!(!q.exists(&keys.lock(&a)).await);
    assert_eq!(job_id(claim(&mut q, "u").await), a);
}
