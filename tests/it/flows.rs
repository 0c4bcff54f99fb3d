//! Flows at the script level: what a finishing child does to its parent (completion, each
//! failure flag, retention) and `moveToWaitingChildren`, asserted on the Redis state and the
//! events they leave in the parent's queue, which may be another queue or prefix.

use fetch_worker::bullmq::scripts::ClaimArgs;
use fetch_worker::bullmq::scripts::move_to_finished::{MoveToFinished, Outcome};
use fetch_worker::bullmq::scripts::move_to_waiting_children::MoveToWaitingChildren;
use fetch_worker::bullmq::{Compat, Error, KeepJobs, QueueKeys, ScriptCode};
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};

use crate::support::{NewJob, RedisServer, TestQueue, now_ms, unique_queue};

fn claim_args(token: &str) -> ClaimArgs {
    ClaimArgs {
        token: token.into(),
        lock: std::time::Duration::from_secs(30),
        worker_name: None,
        limiter: None,
        compat: Compat::Auto,
    }
}

/// The parent's queue: keys under their own prefix and name, on the child queue's Redis.
fn parent_queue(prefix: &str) -> QueueKeys {
    QueueKeys::new(prefix, &unique_queue("parents"))
}

/// `P:Q`, the form BullMQ stores as `parent.queueKey`.
fn queue_key(k: &QueueKeys) -> String {
    k.base.trim_end_matches(':').to_string()
}

/// Stores parent `id` in `pk`'s queue waiting for `children` (full job keys), as a
/// FlowProducer leaves it: its hash (with `priority` and `delay`), `waiting-children`, and
/// `:dependencies`.
async fn park_parent(
    con: &mut MultiplexedConnection,
    pk: &QueueKeys,
    id: &str,
    priority: u64,
    delay: u64,
    children: &[String],
) {
    let mut p = redis::pipe();
    p.hset_multiple(
        pk.job(id),
        &[
            ("name", "parent".to_string()),
            ("data", "{}".to_string()),
            ("opts", "{}".to_string()),
            ("timestamp", now_ms().to_string()),
            ("priority", priority.to_string()),
            ("delay", delay.to_string()),
        ],
    )
    .ignore();
    p.zadd(&pk.waiting_children, id, now_ms()).ignore();
    for child in children {
        p.sadd(pk.dependencies(id), child).ignore();
    }
    let _: () = p.query_async(con).await.unwrap();
}

/// Adds a job to `q` that is a child of `parent_id` in `pk`'s queue, with the failure flags
/// in `flags` (`{"fpof": true}`…) stored in its `parent` JSON; returns its id.
async fn add_child(q: &mut TestQueue, pk: &QueueKeys, parent_id: &str, flags: Value) -> String {
    let id = q.add(NewJob::new(json!({}))).await;
    let mut parent = json!({"id": parent_id, "queueKey": queue_key(pk)});
    if let (Some(p), Some(f)) = (parent.as_object_mut(), flags.as_object()) {
        p.extend(f.clone());
    }
    let _: () = redis::cmd("HSET")
        .arg(q.keys.job(&id))
        .arg("parentKey")
        .arg(pk.job(parent_id))
        .arg("parent")
        .arg(parent.to_string())
        .query_async(&mut q.con)
        .await
        .unwrap();
    id
}

/// Claims the next job of `q` with `token`; panics when there is none.
async fn claim(q: &mut TestQueue, token: &str) -> String {
    claim_job(q, token).await.id
}

/// Claims the next job of `q`, as the worker holds it.
async fn claim_job(q: &mut TestQueue, token: &str) -> fetch_worker::bullmq::Job {
    q.claim_job(&claim_args(token), now_ms()).await
}

/// Claims the next job of `q` (it must be `id`) and ends it with `outcome` at `now`.
async fn finish(q: &mut TestQueue, id: &str, outcome: Outcome, keep: KeepJobs, now: u64) {
    let job = claim_job(q, "t").await;
    assert_eq!(job.id, id, "claimed the expected job");
    let keys = q.keys.clone();
    MoveToFinished {
        now_ms: now,
        job_id: id,
        outcome: &outcome,
        keep,
        attempts: 1,
        fetch_next: false,
        attempts_made: 0,
        metrics_points: None,
        dedup_id: job.dedup_id.as_deref(),
        has_parent: job.has_parent,
        claim: &claim_args("t"),
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap();
}

fn completed(value: Value) -> Outcome {
    Outcome::Completed {
        returnvalue: value.to_string(),
    }
}

fn failed(reason: &str) -> Outcome {
    Outcome::Failed {
        reason: reason.into(),
        stacktrace: "[]".into(),
    }
}

async fn smembers(con: &mut MultiplexedConnection, key: &str) -> Vec<String> {
    let mut v: Vec<String> = redis::cmd("SMEMBERS")
        .arg(key)
        .query_async(con)
        .await
        .unwrap();
    v.sort();
    v
}

async fn hgetall(
    con: &mut MultiplexedConnection,
    key: &str,
) -> std::collections::BTreeMap<String, String> {
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(con)
        .await
        .unwrap()
}

async fn hget(con: &mut MultiplexedConnection, key: &str, field: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query_async(con)
        .await
        .unwrap()
}

async fn zscore(con: &mut MultiplexedConnection, key: &str, member: &str) -> Option<f64> {
    redis::cmd("ZSCORE")
        .arg(key)
        .arg(member)
        .query_async(con)
        .await
        .unwrap()
}

/// Every event of a stream as (name, fields).
async fn events(con: &mut MultiplexedConnection, stream: &str) -> Vec<(String, Vec<String>)> {
    let raw: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(con)
        .await
        .unwrap();
    raw.into_iter()
        .map(|(_, mut kv)| {
            let name = kv.get(1).cloned().unwrap_or_default();
            kv.drain(..2.min(kv.len()));
            (name, kv)
        })
        .collect()
}

/// The child that completes last moves the parent (here in another prefix and queue) to the
/// front of its ready list, with each child's value in `:processed`, a `waiting` event on the
/// parent's stream and a wake marker in the parent's queue; the first child changes nothing
/// but its own entries.
#[tokio::test]
async fn the_last_child_to_complete_releases_its_parent_in_another_prefix() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "kids").await;
    let pk = parent_queue("alt");
    let a = add_child(&mut q, &pk, "p1", json!({})).await;
    let b = add_child(&mut q, &pk, "p1", json!({})).await;
    let (ka, kb) = (q.keys.job(&a), q.keys.job(&b));
    park_parent(&mut q.con, &pk, "p1", 0, 0, &[ka.clone(), kb.clone()]).await;
    // Something already waits in the parent's queue: the parent goes in front of it.
    let _: () = redis::cmd("LPUSH")
        .arg(&pk.wait)
        .arg("older")
        .query_async(&mut q.con)
        .await
        .unwrap();

    finish(
        &mut q,
        &a,
        completed(json!({"n": 1})),
        KeepJobs::ALL,
        now_ms(),
    )
    .await;
    assert_eq!(
        smembers(&mut q.con, &pk.dependencies("p1")).await,
        vec![kb.clone()]
    );
    assert_eq!(q.zrange(&pk.waiting_children).await, vec!["p1"]);
    assert!(events(&mut q.con, &pk.events).await.is_empty());

    finish(
        &mut q,
        &b,
        completed(json!({"n": 2})),
        KeepJobs::ALL,
        now_ms(),
    )
    .await;
    assert!(
        smembers(&mut q.con, &pk.dependencies("p1"))
            .await
            .is_empty()
    );
    let processed = hgetall(&mut q.con, &pk.processed("p1")).await;
    assert_eq!(processed.get(&ka).map(String::as_str), Some(r#"{"n":1}"#));
    assert_eq!(processed.get(&kb).map(String::as_str), Some(r#"{"n":2}"#));
    assert!(q.zrange(&pk.waiting_children).await.is_empty());
    assert_eq!(
        q.lrange(&pk.wait).await,
        vec!["older", "p1"],
        "RPUSH: next to run"
    );
    assert_eq!(zscore(&mut q.con, &pk.marker, "0").await, Some(0.0));
    let ev = events(&mut q.con, &pk.events).await;
    assert_eq!(
        ev,
        vec![(
            "waiting".to_string(),
            vec![
                "jobId".into(),
                "p1".into(),
                "prev".into(),
                "waiting-children".into()
            ]
        )]
    );
    // The children finished normally in their own queue.
    assert_eq!(q.zrange(&q.keys.completed.clone()).await, vec![a, b]);
}

/// A child whose dependency was removed while it ran (Node's `job.removeChildDependency()`
/// drops `parentKey`/`parent` and its entry in the parent's dependencies) finishes on its own:
/// the finish reads the parent fields again rather than trusting the claim's read.
#[tokio::test]
async fn a_child_unlinked_while_it_runs_leaves_its_parent_alone() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "kids").await;
    let pk = parent_queue("bull");
    let a = add_child(&mut q, &pk, "p1", json!({})).await;
    let ka = q.keys.job(&a);
    park_parent(&mut q.con, &pk, "p1", 0, 0, std::slice::from_ref(&ka)).await;
    let job = claim_job(&mut q, "t").await;
    assert!(job.has_parent, "the claim saw the parent");
    let _: () = redis::pipe()
        .cmd("HDEL")
        .arg(&ka)
        .arg("parentKey")
        .arg("parent")
        .ignore()
        .cmd("SREM")
        .arg(pk.dependencies("p1"))
        .arg(&ka)
        .ignore()
        .query_async(&mut q.con)
        .await
        .unwrap();
    let keys = q.keys.clone();
    MoveToFinished {
        now_ms: now_ms(),
        job_id: &a,
        outcome: &completed(json!(1)),
        keep: KeepJobs::ALL,
        attempts: 1,
        fetch_next: false,
        attempts_made: 0,
        metrics_points: None,
        dedup_id: job.dedup_id.as_deref(),
        has_parent: job.has_parent,
        claim: &claim_args("t"),
    }
    .call(&mut q.con, &keys)
    .await
    .unwrap();
    assert_eq!(q.zrange(&keys.completed).await, vec![a]);
    assert!(hgetall(&mut q.con, &pk.processed("p1")).await.is_empty());
    assert_eq!(q.zrange(&pk.waiting_children).await, vec!["p1"]);
    assert!(events(&mut q.con, &pk.events).await.is_empty());
}

/// A released parent keeps its priority (to `prioritized`, scored by the priority counter) or
/// its delay (to `delayed` at (now + delay) * 4096, a `delayed` event with the due time, the
/// delay marker), as BullMQ's moveParentToWait.
#[tokio::test]
async fn a_released_parent_keeps_its_priority_or_its_delay() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "kids").await;
    let pk = parent_queue("bull");
    let a = add_child(&mut q, &pk, "prio", json!({})).await;
    let b = add_child(&mut q, &pk, "late", json!({})).await;
    park_parent(&mut q.con, &pk, "prio", 3, 0, &[q.keys.job(&a)]).await;
    park_parent(&mut q.con, &pk, "late", 0, 5000, &[q.keys.job(&b)]).await;

    let now = now_ms();
    finish(&mut q, &a, completed(json!(1)), KeepJobs::ALL, now).await;
    finish(&mut q, &b, completed(json!(2)), KeepJobs::ALL, now).await;
    let prio = zscore(&mut q.con, &pk.prioritized, "prio").await.unwrap();
    assert_eq!(prio, (3u64 * (1 << 32) + 1) as f64);
    let due = now + 5000;
    let late = zscore(&mut q.con, &pk.delayed, "late").await.unwrap();
    assert_eq!(late, (due * 4096) as f64);
    assert_eq!(zscore(&mut q.con, &pk.marker, "1").await, Some(due as f64));
    assert!(q.lrange(&pk.wait).await.is_empty());
    let ev = events(&mut q.con, &pk.events).await;
    assert_eq!(ev[0].0, "waiting");
    assert_eq!(ev[0].1[1], "prio");
    assert_eq!(
        ev[1],
        (
            "delayed".to_string(),
            vec![
                "jobId".into(),
                "late".into(),
                "delay".into(),
                due.to_string()
            ]
        )
    );
}

/// While the parent's queue is paused, a released parent goes where that queue's major keeps
/// ready jobs: the `paused` list for BullMQ 5, `wait` for BullMQ 6; no wake marker either way.
#[tokio::test]
async fn a_parent_released_while_paused_follows_its_queues_major() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "kids").await;
    for (version, list) in [("bullmq:5.81.5", "paused"), ("bullmq:6.7.0", "wait")] {
        let pk = parent_queue("bull");
        let _: () = redis::cmd("HSET")
            .arg(&pk.meta)
            .arg("paused")
            .arg(1)
            .arg("version")
            .arg(version)
            .query_async(&mut q.con)
            .await
            .unwrap();
        let c = add_child(&mut q, &pk, "p", json!({})).await;
        park_parent(&mut q.con, &pk, "p", 0, 0, &[q.keys.job(&c)]).await;
        finish(&mut q, &c, completed(json!(null)), KeepJobs::ALL, now_ms()).await;
        let (wait, paused) = (q.lrange(&pk.wait).await, q.lrange(&pk.paused).await);
        if list == "paused" {
            assert_eq!((wait, paused), (vec![], vec!["p".to_string()]), "{version}");
        } else {
            assert_eq!((wait, paused), (vec!["p".to_string()], vec![]), "{version}");
        }
        assert_eq!(zscore(&mut q.con, &pk.marker, "0").await, None, "{version}");
    }
}

/// failParentOnFailure: the child key moves to the parent's `:unsuccessful` and the parent
/// gets `defa`; a parked parent (waiting-children, or delayed with its delay reset) is made
/// ready so a worker fails it, an active one only gets `defa`, a failed one is left alone.
#[tokio::test]
async fn fail_parent_on_failure_defers_the_parents_failure() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "kids").await;
    let pk = parent_queue("bull");

    let c1 = add_child(&mut q, &pk, "parked", json!({"fpof": true})).await;
    let c2 = add_child(&mut q, &pk, "parked", json!({"fpof": true})).await;
    let (k1, k2) = (q.keys.job(&c1), q.keys.job(&c2));
    park_parent(&mut q.con, &pk, "parked", 0, 0, &[k1.clone(), k2.clone()]).await;
    let now = now_ms();
    // c2 stays pending: out of the way of the claims below.
    let _: () = redis::cmd("LREM")
        .arg(&q.keys.wait)
        .arg(0)
        .arg(&c2)
        .query_async(&mut q.con)
        .await
        .unwrap();
    finish(&mut q, &c1, failed("boom"), KeepJobs::ALL, now).await;
    let reason = format!("child {k1} failed");
    assert_eq!(
        hget(&mut q.con, &pk.job("parked"), "defa").await,
        Some(reason)
    );
    assert_eq!(q.zrange(&pk.unsuccessful("parked")).await, vec![k1.clone()]);
    assert_eq!(
        smembers(&mut q.con, &pk.dependencies("parked")).await,
        vec![k2],
        "the other child is still pending: released anyway"
    );
    assert_eq!(q.lrange(&pk.wait).await, vec!["parked"]);
    assert!(q.zrange(&pk.waiting_children).await.is_empty());

    // A delayed parent loses its delay and is made ready. (Ids must not collide with queue
    // key suffixes such as `delayed`.)
    let c3 = add_child(&mut q, &pk, "held", json!({"fpof": true})).await;
    park_parent(&mut q.con, &pk, "held", 0, 9000, &[q.keys.job(&c3)]).await;
    let _: () = redis::cmd("ZREM")
        .arg(&pk.waiting_children)
        .arg("held")
        .query_async(&mut q.con)
        .await
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(&pk.delayed)
        .arg((now + 9000) * 4096)
        .arg("held")
        .query_async(&mut q.con)
        .await
        .unwrap();
    finish(&mut q, &c3, failed("boom"), KeepJobs::ALL, now).await;
    assert_eq!(
        hget(&mut q.con, &pk.job("held"), "delay").await.as_deref(),
        Some("0")
    );
    assert!(q.zrange(&pk.delayed).await.is_empty());
    assert_eq!(q.lrange(&pk.wait).await, vec!["parked", "held"]);
    assert!(hget(&mut q.con, &pk.job("held"), "defa").await.is_some());

    // A parent that is neither parked nor failed only gets defa; a failed one nothing.
    let c4 = add_child(&mut q, &pk, "running", json!({"fpof": true})).await;
    park_parent(&mut q.con, &pk, "running", 0, 0, &[q.keys.job(&c4)]).await;
    let c5 = add_child(&mut q, &pk, "done", json!({"fpof": true})).await;
    park_parent(&mut q.con, &pk, "done", 0, 0, &[q.keys.job(&c5)]).await;
    for id in ["running", "done"] {
        let _: () = redis::cmd("ZREM")
            .arg(&pk.waiting_children)
            .arg(id)
            .query_async(&mut q.con)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("ZADD")
        .arg(&pk.failed)
        .arg(now)
        .arg("done")
        .query_async(&mut q.con)
        .await
        .unwrap();
    finish(&mut q, &c4, failed("boom"), KeepJobs::ALL, now).await;
    finish(&mut q, &c5, failed("boom"), KeepJobs::ALL, now).await;
    assert!(hget(&mut q.con, &pk.job("running"), "defa").await.is_some());
    assert_eq!(hget(&mut q.con, &pk.job("done"), "defa").await, None);
    assert_eq!(q.lrange(&pk.wait).await, vec!["parked", "held"]);
}

/// continueParentOnFailure records the failure and releases the parent at once, even with
/// another child pending; ignoreDependencyOnFailure records it and releases only when
/// nothing is pending; removeDependencyOnFailure forgets the child; without a flag the failed
/// child stays pending.
#[tokio::test]
async fn the_other_failure_flags_act_as_upstream() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "kids").await;
    let pk = parent_queue("bull");
    let now = now_ms();

    let mut pending = Vec::new();
    for (parent, flags) in [
        ("cpof", json!({"cpof": true})),
        ("idof", json!({"idof": true})),
        ("rdof", json!({"rdof": true})),
        ("none", json!({})),
    ] {
        let failing = add_child(&mut q, &pk, parent, flags).await;
        let other = add_child(&mut q, &pk, parent, json!({})).await;
        let keys = [q.keys.job(&failing), q.keys.job(&other)];
        park_parent(&mut q.con, &pk, parent, 0, 0, &keys).await;
        pending.push((parent, failing, other, keys));
    }
    for (_, failing, other, _) in &pending {
        // The jobs sit in wait in creation order; skip the "other" child for now.
        let _: () = redis::cmd("LREM")
            .arg(&q.keys.wait)
            .arg(0)
            .arg(other)
            .query_async(&mut q.con)
            .await
            .unwrap();
        finish(&mut q, failing, failed("child broke"), KeepJobs::ALL, now).await;
    }
    assert_eq!(
        q.lrange(&pk.wait).await,
        vec!["cpof"],
        "only cpof released early"
    );
    for (parent, _, _, [kf, ko]) in &pending {
        let deps = smembers(&mut q.con, &pk.dependencies(parent)).await;
        let failures = hgetall(&mut q.con, &pk.failed_children(parent)).await;
        match *parent {
            "none" => {
                let mut both = vec![kf.clone(), ko.clone()];
                both.sort();
                assert_eq!(deps, both, "none: still pending");
                assert!(failures.is_empty());
            }
            "rdof" => {
                assert_eq!(deps, vec![ko.clone()]);
                assert!(failures.is_empty(), "rdof keeps no record");
            }
            _ => {
                assert_eq!(deps, vec![ko.clone()], "{parent}");
                assert_eq!(
                    failures.get(kf).map(String::as_str),
                    Some("child broke"),
                    "{parent}"
                );
            }
        }
        assert!(q.zrange(&pk.unsuccessful(parent)).await.is_empty());
    }

    // The remaining children complete: idof and rdof parents are released now; cpof's is
    // already out, and none's keeps waiting for its failed child.
    for (_, _, other, _) in &pending {
        let _: () = redis::cmd("RPUSH")
            .arg(&q.keys.wait)
            .arg(other)
            .query_async(&mut q.con)
            .await
            .unwrap();
        finish(&mut q, other, completed(json!("ok")), KeepJobs::ALL, now).await;
    }
    assert_eq!(q.lrange(&pk.wait).await, vec!["cpof", "idof", "rdof"]);
    assert_eq!(q.zrange(&pk.waiting_children).await, vec!["none"]);
}

/// Retention that deletes a failed child still pending for its parent unlinks it: removed at
/// once (count 0) or trimmed by a later finish (count 1), the parent is released to the front
/// of `wait`, whatever its priority, as BullMQ's removeParentDependencyKey does.
#[tokio::test]
async fn retention_of_a_pending_failed_child_releases_its_parent() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "kids").await;
    let pk = parent_queue("bull");
    let now = now_ms();
    let at_once = KeepJobs {
        count: 0,
        age: None,
        limit: None,
    };
    let keep_one = KeepJobs {
        count: 1,
        age: None,
        limit: None,
    };

    let c1 = add_child(&mut q, &pk, "p1", json!({})).await;
    park_parent(&mut q.con, &pk, "p1", 4, 0, &[q.keys.job(&c1)]).await;
    finish(&mut q, &c1, failed("boom"), at_once, now).await;
    assert!(!q.exists(&q.keys.job(&c1)).await, "the child is gone");
    assert_eq!(
        q.lrange(&pk.wait).await,
        vec!["p1"],
        "wait, not prioritized"
    );
    assert_eq!(q.zcard(&pk.prioritized).await, 0);

    let c2 = add_child(&mut q, &pk, "p2", json!({})).await;
    let other = q.add(NewJob::new(json!({}))).await;
    park_parent(&mut q.con, &pk, "p2", 0, 0, &[q.keys.job(&c2)]).await;
    finish(&mut q, &c2, failed("boom"), KeepJobs::ALL, now).await;
    assert_eq!(
        q.zrange(&pk.waiting_children).await,
        vec!["p2"],
        "kept: still pending"
    );
    finish(&mut q, &other, failed("boom"), keep_one, now + 1).await;
    assert!(!q.exists(&q.keys.job(&c2)).await, "the child was trimmed");
    assert_eq!(q.zrange(&q.keys.failed.clone()).await, vec![other]);
    assert_eq!(q.lrange(&pk.wait).await, vec!["p1", "p2"]);
    let ev = events(&mut q.con, &pk.events).await;
    let released: Vec<&str> = ev
        .iter()
        .filter(|(n, f)| n == "waiting" && f[3] == "waiting-children")
        .map(|(_, f)| f[1].as_str())
        .collect();
    assert_eq!(released, vec!["p1", "p2"]);
}

/// moveToWaitingChildren parks an active job with a pending child (lock released, out of
/// active, in waiting-children, `waiting-children` event, no attempt counted), leaves it
/// running when nothing (or not the named child) is pending, and refuses a job with a failed
/// child or held by another token.
#[tokio::test]
async fn move_to_waiting_children_parks_only_a_job_with_pending_children() {
    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "park").await;
    let keys = q.keys.clone();
    let id = q.add(NewJob::new(json!({}))).await;
    assert_eq!(claim(&mut q, "t").await, id);
    let con = q.con.clone();
    let call = |child: Option<&'static str>, token: &'static str| {
        let keys = keys.clone();
        let id = id.clone();
        let mut con = con.clone();
        async move {
            MoveToWaitingChildren {
                now_ms: 77,
                job_id: &id,
                token,
                child_key: child,
            }
            .call(&mut con, &keys)
            .await
        }
    };

    assert!(
        !call(None, "t").await.unwrap(),
        "no children: keeps running"
    );
    let _: () = redis::cmd("SADD")
        .arg(keys.dependencies(&id))
        .arg("bull:other:9")
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert!(!call(Some("bull:other:8"), "t").await.unwrap());
    assert!(matches!(
        call(None, "someone-else").await,
        Err(Error::Script {
            code: ScriptCode::LockMismatch,
            ..
        })
    ));
    assert_eq!(q.lrange(&keys.active).await, vec![id.clone()]);

    assert!(call(Some("bull:other:9"), "t").await.unwrap());
    assert!(q.lrange(&keys.active).await.is_empty());
    assert_eq!(
        zscore(&mut q.con, &keys.waiting_children, &id).await,
        Some(77.0)
    );
    assert!(!q.exists(&keys.lock(&id)).await);
    assert_eq!(q.hget(&id, "atm").await, None, "not an attempt");
    let ev = q.events().await;
    let parked = ev.last().unwrap();
    assert_eq!(parked.0, "waiting-children");
    assert_eq!(
        parked.1,
        vec![
            ("jobId".to_string(), id.clone()),
            ("prev".to_string(), "active".to_string())
        ]
    );

    let _: () = redis::cmd("ZADD")
        .arg(keys.unsuccessful(&id))
        .arg(1)
        .arg("bull:other:9")
        .query_async(&mut q.con)
        .await
        .unwrap();
    assert!(matches!(
        call(None, "t").await,
        Err(Error::Script {
            code: ScriptCode::FailedChildren,
            ..
        })
    ));
    let missing = MoveToWaitingChildren {
        now_ms: 1,
        job_id: "nope",
        token: "t",
        child_key: None,
    }
    .call(&mut q.con.clone(), &keys)
    .await;
    assert!(matches!(
        missing,
        Err(Error::Script {
            code: ScriptCode::JobMissing,
            ..
        })
    ));
}

/// End to end through the worker and the `sleep` processor: a job with `waitChildren` and a
/// pending child parks itself (lock released, not an attempt, out of the worker's hands: the
/// drained worker stops), and once the child completed in its own queue it runs again and
/// returns the child's value (`returnChildren`).
#[tokio::test]
async fn the_sleep_processor_waits_for_its_child_then_returns_its_value() {
    use std::sync::Arc;

    use fetch_worker::processors::Sleep;

    let server = RedisServer::start();
    let mut q = TestQueue::new(&server, "parent").await;
    let mut kids = TestQueue::new(&server, "kids").await;
    let parent = q
        .add(NewJob::new(
            json!({"ms": 0, "waitChildren": true, "returnChildren": true}),
        ))
        .await;
    let child = add_child(&mut kids, &q.keys.clone(), &parent, json!({})).await;
    let child_key = kids.keys.job(&child);
    let _: () = redis::cmd("SADD")
        .arg(q.keys.dependencies(&parent))
        .arg(&child_key)
        .query_async(&mut q.con)
        .await
        .unwrap();

    let first = q.drain(q.options(), Arc::new(Sleep)).await;
    assert_eq!((first.completed, first.failed, first.retried), (0, 0, 0));
    assert_eq!(
        q.zrange(&q.keys.waiting_children.clone()).await,
        vec![parent.clone()]
    );
    assert!(!q.exists(&q.keys.lock(&parent)).await, "lock released");
    assert_eq!(q.llen(&q.keys.active.clone()).await, 0);
    assert_eq!(q.hget(&parent, "atm").await, None, "not an attempt");
    assert_eq!(q.hget(&parent, "ats").await.as_deref(), Some("1"));

    finish(
        &mut kids,
        &child,
        completed(json!({"slept": 1})),
        KeepJobs::ALL,
        now_ms(),
    )
    .await;
    assert_eq!(q.lrange(&q.keys.wait.clone()).await, vec![parent.clone()]);
    let second = q.drain(q.options(), Arc::new(Sleep)).await;
    assert_eq!(second.completed, 1);
    let value: Value =
        serde_json::from_str(&q.hget(&parent, "returnvalue").await.unwrap()).unwrap();
    assert_eq!(
        value,
        json!({"slept": 0, "children": {child_key: {"slept": 1}}})
    );
    assert_eq!(q.hget(&parent, "atm").await.as_deref(), Some("1"));
    let lifecycle: Vec<String> = q
        .events_of(&parent)
        .await
        .into_iter()
        .filter(|n| n != "progress")
        .collect();
    assert_eq!(
        lifecycle,
        vec![
            "added",
            "waiting",
            "active",
            "waiting-children",
            "waiting",
            "active",
            "completed"
        ]
    );
}
