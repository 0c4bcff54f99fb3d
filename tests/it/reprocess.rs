//! Reprocessing a day from raw storage: a day fetched into local storage, GridFS or S3 (moto)
//! and then reprocessed with the POS server failing every request gives exactly the documents
//! of the fetch, through the same fenced import (the day's fence moves on, the record says
//! `done`); a day without stored files fails at once; changed stored bytes are refused.

use std::sync::Arc;

use fetch_worker::fake_pos::{Fault, FaultRule};
use fetch_worker::pipeline::storage::{GridFsStorage, LocalStorage, RawStorage, S3Storage, Stores};
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};

use crate::pipeline::Env;
use crate::support::NewJob;
use crate::support::s3::TestS3;

const DAY: (&str, &str) = ("BMC", "2026-02-09");

fn day_data(reprocess: bool) -> Value {
    let mut data = json!({"branch": DAY.0, "pos": 1, "date": DAY.1});
    if reprocess {
        data["reprocess"] = json!(true);
    }
    data
}

/// The day's transaction documents by `_id`, without what each import sets anew.
async fn day_rows(env: &Env) -> Vec<Document> {
    let mut rows: Vec<Document> = env
        .db()
        .await
        .collection::<Document>("transactions")
        .find(doc! {"branch": DAY.0})
        .sort(doc! {"_id": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    for row in &mut rows {
        for field in ["importId", "importedAt", "fence"] {
            row.remove(field);
        }
    }
    rows
}

/// Runs one job of `data` to its end with `handler`; returns its id.
async fn run_job(
    env: &mut Env,
    handler: Arc<fetch_worker::handler::FetchHandler>,
    data: Value,
) -> String {
    let id = env
        .queue
        .add(
            NewJob::new(data)
                .opts(json!({"attempts": 3, "backoff": {"type": "fixed", "delay": 50}})),
        )
        .await;
    env.drain_with(handler, 1).await;
    id
}

async fn return_value(env: &mut Env, id: &str) -> Value {
    let text = env
        .queue
        .hget(id, "returnvalue")
        .await
        .unwrap_or_else(|| panic!("job {id} did not complete"));
    serde_json::from_str(&text).unwrap()
}

/// Fetches the day into `storage`, breaks the POS server, reprocesses the day, and checks
/// that the documents are those of the fetch, the import was fenced like any other, and the
/// file records point into `storage`. Returns the file records.
async fn fetch_then_reprocess(
    env: &mut Env,
    storage: Arc<dyn RawStorage>,
    stores: Stores,
) -> Vec<Document> {
    let handler = env.handler_with(None, storage, Arc::new(stores)).await;
    let fetched = run_job(env, handler.clone(), day_data(false)).await;
    let fetch = return_value(env, &fetched).await;
    assert_eq!(fetch["source"], "pos");
    let imported = fetch["rows"]["imported"].as_u64().unwrap();
    assert!(imported > 100, "{fetch}");
    let before = day_rows(env).await;
    assert_eq!(before.len() as u64, imported);

    // Every POS request fails from now on: a reprocess must not need the server.
    env.pos
        .faults()
        .set(vec![FaultRule::new(Fault::Status { status: 500 })]);
    let again = run_job(env, handler, day_data(true)).await;
    let reprocessed = return_value(env, &again).await;
    assert_eq!(reprocessed["source"], "storage", "{reprocessed}");
    assert_eq!(reprocessed["rows"], fetch["rows"]);
    assert_eq!(reprocessed["files"], fetch["files"]);
    let after = day_rows(env).await;
    assert_eq!(after.len(), before.len());
    assert!(
        after == before,
        "reprocessed documents differ from the fetch's"
    );

    // The same fenced import: the day's second import, finished.
    let record = env
        .db()
        .await
        .collection::<Document>("imports")
        .find_one(doc! {"_id": format!("{}|1|{}", DAY.0, DAY.1)})
        .await
        .unwrap()
        .unwrap();
    let fence = match record.get("fence") {
        Some(mongodb::bson::Bson::Int32(n)) => i64::from(*n),
        Some(mongodb::bson::Bson::Int64(n)) => *n,
        other => panic!("fence {other:?}"),
    };
    assert_eq!(fence, 2, "{record}");
    assert_eq!(record.get_str("state").unwrap(), "done");
    assert_eq!(record.get_str("job").unwrap(), again);
    let fences: Vec<Document> = env
        .db()
        .await
        .collection::<Document>("transactions")
        .find(doc! {"branch": DAY.0, "fence": {"$ne": fence}})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(fences.is_empty(), "rows of the first import remain");

    let records: Vec<Document> = env
        .all("filerecords")
        .await
        .into_iter()
        .filter(|r| r.get_str("branch") == Ok(DAY.0))
        .collect();
    assert_eq!(records.len(), fetch["files"].as_array().unwrap().len());
    for r in &records {
        assert_eq!(r.get_str("status").unwrap(), "parsed", "{r}");
    }
    records
}

/// Local storage: fetched, then reprocessed with the POS server down, the same documents.
#[tokio::test]
async fn a_day_reprocessed_from_local_storage_gives_the_same_documents() {
    let mut env = Env::start("reprocess_local").await;
    let local = LocalStorage::new(env.raw.path()).unwrap();
    let stores = Stores::default().with_local(&local);
    let records = fetch_then_reprocess(&mut env, Arc::new(local), stores).await;
    let storage = records[0].get_document("storage").unwrap();
    assert_eq!(storage.get_str("provider").unwrap(), "local");
    assert!(
        storage
            .get_str("path")
            .unwrap()
            .starts_with(env.raw.path().canonicalize().unwrap().to_str().unwrap())
    );
}

/// GridFS: the same.
#[tokio::test]
async fn a_day_reprocessed_from_gridfs_gives_the_same_documents() {
    let mut env = Env::start("reprocess_gridfs").await;
    let gridfs = GridFsStorage::new(env.db().await, None);
    let stores = Stores::default().with_gridfs(gridfs.clone());
    let records = fetch_then_reprocess(&mut env, Arc::new(gridfs), stores).await;
    let storage = records[0].get_document("storage").unwrap();
    assert_eq!(storage.get_str("provider").unwrap(), "gridfs");
}

/// S3 (moto): fetched into the bucket (file records say `{provider: "s3", bucket, key}` and
/// each object carries its SHA-256), then reprocessed from it: the same documents.
#[tokio::test]
async fn a_day_fetched_into_s3_and_reprocessed_gives_the_same_documents() {
    let s3 = TestS3::start().await;
    s3.create_bucket("pos-raw").await;
    let mut env = Env::start("reprocess_s3").await;
    let store = S3Storage::new(&s3.settings("pos-raw")).unwrap();
    store.check().await.unwrap();
    let stores = Stores::default().with_s3(store.clone());
    let records = fetch_then_reprocess(&mut env, Arc::new(store), stores).await;
    let mut keys = s3.keys("pos-raw").await;
    keys.sort();
    assert_eq!(keys.len(), records.len());
    for r in &records {
        let storage = r.get_document("storage").unwrap();
        assert_eq!(storage.get_str("provider").unwrap(), "s3", "{r}");
        assert_eq!(storage.get_str("bucket").unwrap(), "pos-raw");
        let key = storage.get_str("key").unwrap();
        let filename = r.get_str("filename").unwrap();
        assert_eq!(key, format!("raw/{}/{}/pos1/{filename}", DAY.0, DAY.1));
        assert!(storage.get("path").is_none(), "{r}");
        let (status, sha, _) = s3.get("pos-raw", key).await;
        assert_eq!(status, 200);
        assert_eq!(sha.as_deref(), Some(r.get_str("checksum").unwrap()));
    }
}

/// A day never fetched: the reprocess fails at once (no retries) with the reason, and leaves
/// a monitor entry; no import of the day is started.
#[tokio::test]
async fn reprocessing_a_day_without_stored_files_fails_permanently() {
    let mut env = Env::start("reprocess_none").await;
    let local = LocalStorage::new(env.raw.path()).unwrap();
    let stores = Stores::default().with_local(&local);
    let handler = env
        .handler_with(None, Arc::new(local), Arc::new(stores))
        .await;
    let id = run_job(&mut env, handler, day_data(true)).await;
    let reason = env.queue.hget(&id, "failedReason").await.unwrap();
    assert_eq!(
        reason,
        "no stored files for BMC pos 1 on 2026-02-09: fetch the day before reprocessing it"
    );
    assert_eq!(env.queue.hget(&id, "atm").await.as_deref(), Some("1"));
    assert!(env.all("imports").await.is_empty());
    let notes: Vec<String> = env
        .all("monitorentries")
        .await
        .iter()
        .map(|d| d.get_str("note").unwrap_or("").to_string())
        .collect();
    assert_eq!(notes, vec![reason]);
}

/// A stored file whose bytes changed since the fetch is refused at once (checksum), and the
/// day keeps the documents of its fetch.
#[tokio::test]
async fn a_stored_file_that_changed_is_refused() {
    let mut env = Env::start("reprocess_changed").await;
    let local = LocalStorage::new(env.raw.path()).unwrap();
    let stores = Stores::default().with_local(&local);
    let handler = env
        .handler_with(None, Arc::new(local.clone()), Arc::new(stores))
        .await;
    run_job(&mut env, handler.clone(), day_data(false)).await;
    let before = day_rows(&env).await;
    let dir = local.root().join(DAY.0).join(DAY.1).join("pos1");
    let rd5000 = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("_rd5000_"))
        .unwrap();
    let mut text = std::fs::read(&rd5000).unwrap();
    text.extend_from_slice(b"\n");
    std::fs::write(&rd5000, text).unwrap();

    let id = run_job(&mut env, handler, day_data(true)).await;
    let reason = env.queue.hget(&id, "failedReason").await.unwrap();
    assert!(reason.contains("stored bytes have sha256"), "{reason}");
    assert_eq!(env.queue.hget(&id, "atm").await.as_deref(), Some("1"));
    assert!(
        day_rows(&env).await == before,
        "the fetched day is untouched"
    );
}

/// `fetch-worker reprocess --branch --pos --from --to` adds one job per day, shaped as the
/// producer's (name, data with `reprocess: true`, attempts, backoff), at the back of `wait`
/// with `added` and `waiting` events, and prints their ids; the worker then reprocesses the
/// fetched day from storage and fails the day never fetched. The same id is never added twice.
#[tokio::test]
async fn the_reprocess_command_enqueues_days_the_worker_reprocesses() {
    let mut env = Env::start("reprocess_cli").await;
    let local = LocalStorage::new(env.raw.path()).unwrap();
    let stores = Stores::default().with_local(&local);
    let handler = env
        .handler_with(None, Arc::new(local), Arc::new(stores))
        .await;
    run_job(&mut env, handler.clone(), day_data(false)).await;

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_fetch-worker"))
        .args(["reprocess", "--branch", "BMC", "--pos", "1"])
        .args(["--from", "2026-02-09", "--to", "2026-02-10"])
        .args([
            "--redis-job-url",
            &env.queue.url,
            "--queue-name",
            &env.queue.name,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ids: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    for (id, date) in ids.iter().zip(["2026-02-09", "2026-02-10"]) {
        let prefix = format!("reprocess.BMC.1.{date}.");
        assert!(id.starts_with(&prefix), "{id}");
        assert!(id[prefix.len()..].parse::<u64>().is_ok(), "{id}");
        assert_eq!(
            env.queue.hget(id, "name").await.as_deref(),
            Some("fetch-job")
        );
        let data: Value = serde_json::from_str(&env.queue.hget(id, "data").await.unwrap()).unwrap();
        assert_eq!(
            data,
            json!({"branch": "BMC", "pos": 1, "date": date, "reprocess": true})
        );
        let opts: Value = serde_json::from_str(&env.queue.hget(id, "opts").await.unwrap()).unwrap();
        assert_eq!(opts["attempts"], 3);
        assert_eq!(
            opts["backoff"],
            json!({"type": "exponential", "delay": 1000})
        );
    }
    let waiting: Vec<String> = redis::cmd("LRANGE")
        .arg(&env.queue.keys.wait)
        .arg(0)
        .arg(-1)
        .query_async(&mut env.queue.con)
        .await
        .unwrap();
    assert_eq!(
        waiting,
        vec![ids[1].clone(), ids[0].clone()],
        "FIFO: the first day at the head"
    );

    // The same id again adds nothing.
    let again = fetch_worker::reprocess::enqueue(
        &mut env.queue.con,
        &env.queue.keys,
        &fetch_worker::pipeline::day::Branch::parse("BMC").unwrap(),
        fetch_worker::pipeline::day::PosNo::parse("1").unwrap(),
        &[fetch_worker::pipeline::day::BusinessDate::parse("2026-02-09").unwrap()],
        fetch_worker::bullmq::Compat::Auto,
        ids[0].rsplit('.').next().unwrap().parse().unwrap(),
    )
    .await
    .unwrap();
    assert!(again.is_empty(), "{again:?}");

    env.pos
        .faults()
        .set(vec![FaultRule::new(Fault::Status { status: 500 })]);
    env.drain_with(handler, 1).await;
    let done = return_value(&mut env, &ids[0]).await;
    assert_eq!(done["source"], "storage", "{done}");
    let reason = env.queue.hget(&ids[1], "failedReason").await.unwrap();
    assert!(
        reason.starts_with("no stored files for BMC pos 1 on 2026-02-10"),
        "{reason}"
    );
}
