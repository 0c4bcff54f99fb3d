//! The MongoDB importer against a real MongoDB-wire server: counts, Decimal128, idempotent
//! re-imports, crash recovery, leases, indexes.

use std::path::PathBuf;

use fetch_worker::pipeline::combine::{CollectSink, CombineOptions, combine_paths};
use fetch_worker::pipeline::day::{Branch, BusinessDate, PosNo};
use std::time::Duration;

use fetch_worker::pipeline::import::{
    Day, ImportError, ImportTimeouts, Importer, count_day, day_keys,
};
use fetch_worker::pipeline::record::Transaction;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, DateTime, doc};

use crate::support::mongo::TestMongo;
use crate::support::proxy::{Proxy, mongo_command};

fn samples() -> PathBuf {
    [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "legacy-samples",
        "input",
    ]
    .iter()
    .collect()
}

/// The typed rows of one sample day, as the combine pass makes them.
fn day_rows(branch: &str, date: &str) -> Vec<Transaction> {
    let files: Vec<PathBuf> = std::fs::read_dir(samples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with(&format!("a_{branch}_1_")) && n.contains(date)
        })
        .collect();
    let mut sink = CollectSink::default();
    combine_paths(&files, &CombineOptions::default(), &mut sink).unwrap();
    sink.transactions
}

fn day(branch: &str, date: &str) -> Day {
    Day {
        branch: Branch::parse(branch).unwrap(),
        pos: PosNo::new(1).unwrap(),
        date: BusinessDate::parse(date).unwrap(),
    }
}

async fn import(importer: &Importer, d: &Day, rows: &[Transaction]) -> (u64, u64) {
    import_as(importer, d, "job-1", rows).await
}

async fn import_as(importer: &Importer, d: &Day, job: &str, rows: &[Transaction]) -> (u64, u64) {
    let mut run = importer.begin(d, job).await.unwrap();
    for batch in rows.chunks(250) {
        run.write(batch).await.unwrap();
    }
    run.finish().await.unwrap()
}

/// A day's rows are stored once each with exact decimals; importing again changes nothing.
#[tokio::test]
async fn import_is_exact_and_idempotent() {
    let mongo = TestMongo::start();
    let db = mongo.database(&TestMongo::unique_db("import")).await;
    let importer = Importer::new(db.clone(), "test");
    importer.ensure_indexes().await.unwrap();
    let rows = day_rows("BMC", "2026-02-09");
    assert!(rows.len() > 100, "{} rows", rows.len());
    let d = day("BMC", "2026-02-09");

    assert_eq!(import(&importer, &d, &rows).await, (rows.len() as u64, 0));
    assert_eq!(count_day(&importer, &d).await.unwrap(), rows.len() as u64);
    let mut expected: Vec<String> = rows.iter().map(|r| r.row_key.clone()).collect();
    expected.sort();
    assert_eq!(day_keys(&importer, &d).await.unwrap(), expected);

    // Money comes back as Decimal128 with the export's scale.
    let sample = &rows[0];
    let stored = db
        .collection::<mongodb::bson::Document>("transactions")
        .find_one(doc! {"_id": &sample.row_key})
        .await
        .unwrap()
        .unwrap();
    match stored.get("amount") {
        Some(Bson::Decimal128(d)) => {
            assert_eq!(Some(d.to_string()), sample.amount.map(|a| a.to_string()))
        }
        other => panic!("amount stored as {other:?}"),
    }
    assert_eq!(stored.get_str("branch").unwrap(), "BMC");
    assert_eq!(stored.get_i32("pos").unwrap(), 1);
    assert!(matches!(stored.get("date"), Some(Bson::DateTime(_))));

    // Again: same rows, nothing removed, nothing added.
    assert_eq!(import(&importer, &d, &rows).await, (rows.len() as u64, 0));
    assert_eq!(day_keys(&importer, &d).await.unwrap(), expected);

    // Another day is untouched by this one.
    let other = day("BMC", "2025-10-08");
    assert_eq!(count_day(&importer, &other).await.unwrap(), 0);

    let names: Vec<String> = db
        .collection::<mongodb::bson::Document>("filerecords")
        .list_index_names()
        .await
        .unwrap();
    assert!(names.iter().any(|n| n.contains("filename")), "{names:?}");
}

/// Short bounds for tests: a takeover of an unfinished import waits 200 ms + the 2 s margin.
fn quick(lease_ms: u64) -> ImportTimeouts {
    ImportTimeouts {
        lease: Duration::from_millis(lease_ms),
        op_timeout: Duration::from_secs(20),
        write_max_time: Duration::from_millis(200),
    }
}

/// The day's record in `imports`.
async fn record(db: &mongodb::Database, d: &Day) -> mongodb::bson::Document {
    db.collection::<mongodb::bson::Document>("imports")
        .find_one(doc! {"_id": d.record_id()})
        .await
        .unwrap()
        .expect("the day has an import record")
}

fn number(d: &mongodb::bson::Document, key: &str) -> i64 {
    match d.get(key) {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => i64::from(*n),
        other => panic!("{key} is {other:?}"),
    }
}

fn sorted_keys(rows: &[Transaction]) -> Vec<String> {
    let mut keys: Vec<String> = rows.iter().map(|r| r.row_key.clone()).collect();
    keys.sort();
    keys
}

/// The fence of every stored row of the day.
async fn fences(db: &mongodb::Database, d: &Day) -> Vec<i64> {
    let date = fetch_worker::pipeline::import::bson_date(d.date.naive());
    let docs: Vec<mongodb::bson::Document> = db
        .collection("transactions")
        .find(doc! {"branch": d.branch.as_str(), "pos": i32::from(d.pos.get()), "date": date})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    docs.iter().map(|d| number(d, "fence")).collect()
}

/// A crash mid-import (half the rows written, plus a row the export no longer has) is taken
/// over at once by a re-run of the same job, even though the crashed import's lease is still
/// live, and the day ends exact and `done`.
#[tokio::test]
async fn a_rerun_of_the_same_job_takes_a_crashed_import_over_at_once() {
    let mongo = TestMongo::start();
    let db = mongo.database(&TestMongo::unique_db("crash")).await;
    let importer = Importer::new(db.clone(), "test").with_timeouts(quick(600_000));
    importer.ensure_indexes().await.unwrap();
    let rows = day_rows("GOA", "2026-02-09");
    let d = day("GOA", "2026-02-09");

    // A row from an older export that is gone now.
    import_as(&importer, &d, "job-7", &rows[..1]).await;
    let mut ghost = fetch_worker::pipeline::import::transaction_document(
        &rows[0],
        "old-import",
        DateTime::now(),
    )
    .unwrap();
    ghost.insert("_id", "GOA|1|2026-02-09|ffffffffffffffff|0");
    ghost.insert("fence", 1i64);
    db.collection("transactions")
        .insert_one(ghost)
        .await
        .unwrap();

    // The crash: half written, never finished; its 10-minute lease stays behind.
    let mut run = importer.begin(&d, "job-7").await.unwrap();
    run.write(&rows[..rows.len() / 2]).await.unwrap();
    drop(run);
    assert_eq!(record(&db, &d).await.get_str("state").unwrap(), "running");

    // Another job must wait for the live lease: Busy, with the lease's end.
    match importer.begin(&d, "job-8").await.unwrap_err() {
        ImportError::Busy {
            holder, until_ms, ..
        } => {
            assert_eq!(holder, "job-7");
            assert!(until_ms > DateTime::now().timestamp_millis() + 500_000);
        }
        other => panic!("expected Busy, got {other:?}"),
    }

    // The same job again takes the day over at once.
    let (written, removed) = import_as(&importer, &d, "job-7", &rows).await;
    assert_eq!(written, rows.len() as u64);
    assert_eq!(removed, 1, "the ghost row is gone");
    assert_eq!(day_keys(&importer, &d).await.unwrap(), sorted_keys(&rows));
    let rec = record(&db, &d).await;
    assert_eq!(rec.get_str("state").unwrap(), "done");
    assert_eq!(number(&rec, "untilMs"), 0, "lease released");
    assert_eq!(number(&rec, "fence"), 3);
    assert!(fences(&db, &d).await.iter().all(|f| *f == 3));

    // Once done, any job may import the day again; nothing changes.
    assert_eq!(
        import_as(&importer, &d, "job-8", &rows).await,
        (rows.len() as u64, 0)
    );
    assert_eq!(day_keys(&importer, &d).await.unwrap(), sorted_keys(&rows));
}

/// Another job waits while the lease lives and takes the day over once it has run out.
#[tokio::test]
async fn another_job_takes_over_once_the_lease_has_run_out() {
    let mongo = TestMongo::start();
    let db = mongo.database(&TestMongo::unique_db("lease")).await;
    let importer = Importer::new(db.clone(), "test").with_timeouts(quick(700));
    importer.ensure_indexes().await.unwrap();
    let rows = day_rows("BMC", "2026-02-09");
    let d = day("BMC", "2026-02-09");
    let mut run = importer.begin(&d, "a").await.unwrap();
    run.write(&rows[..100]).await.unwrap();
    assert!(matches!(
        importer.check_free(&d, "b").await,
        Err(ImportError::Busy { .. })
    ));
    tokio::time::sleep(Duration::from_millis(900)).await;
    importer.check_free(&d, "b").await.unwrap();
    assert_eq!(
        import_as(&importer, &d, "b", &rows).await,
        (rows.len() as u64, 0)
    );
    // The overtaken import learns it was fenced and writes nothing more.
    let err = run.write(&rows[100..200]).await.unwrap_err();
    assert!(
        matches!(err, ImportError::Fenced { fence: 1, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(matches!(
        run.finish().await.unwrap_err(),
        ImportError::Fenced { .. }
    ));
    assert_eq!(day_keys(&importer, &d).await.unwrap(), sorted_keys(&rows));
    assert!(fences(&db, &d).await.iter().all(|f| *f == 2));
    assert_eq!(record(&db, &d).await.get_str("state").unwrap(), "done");
}

/// Two importers of one database: `slow` talks through a proxy that can hold its requests,
/// `fast` talks directly (two workers, one behind a bad network).
struct Race {
    db: mongodb::Database,
    proxy: Proxy,
    slow: Importer,
    fast: Importer,
}

impl Race {
    async fn start(mongo: &TestMongo, label: &str, lease_ms: u64) -> Race {
        let db_name = TestMongo::unique_db(label);
        let db = mongo.database(&db_name).await;
        let proxy = Proxy::start(mongo.addr()).await;
        let slow_db = mongodb::Client::with_uri_str(mongo.uri_via(proxy.addr))
            .await
            .unwrap()
            .database(&db_name);
        let slow = Importer::new(slow_db, "slow").with_timeouts(quick(lease_ms));
        let fast = Importer::new(db.clone(), "fast").with_timeouts(quick(lease_ms));
        fast.ensure_indexes().await.unwrap();
        Race {
            db,
            proxy,
            slow,
            fast,
        }
    }
}

/// The reproduced loss: an older import's stale-row delete, held by the network for seconds,
/// lands after a newer import finished the day. The newer rows survive; the older import
/// learns it was fenced; the day is exact and `done`.
#[tokio::test]
async fn a_delayed_delete_of_an_older_import_cannot_remove_newer_rows() {
    let mongo = TestMongo::start();
    let Race {
        db,
        proxy,
        slow,
        fast,
    } = Race::start(&mongo, "late_delete", 1_000).await;
    let rows = day_rows("BMC", "2026-02-09");
    let d = day("BMC", "2026-02-09");

    // The day was imported before (from an earlier export), so a re-import deletes stale
    // rows at its end.
    import_as(&fast, &d, "job-0", &rows[..10]).await;
    // The slow worker re-imports every row, then its finish's delete is held for 8 s.
    let mut old = slow.begin(&d, "job-1").await.unwrap();
    for batch in rows.chunks(200) {
        old.write(batch).await.unwrap();
    }
    proxy.hold_next(&mongo_command("delete"), Duration::from_secs(8));
    let old_finish = tokio::spawn(async move { old.finish().await });

    // Its lease runs out; a duplicate job imports the whole day and finishes first.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        import_as(&fast, &d, "job-2", &rows).await,
        (rows.len() as u64, 0)
    );
    assert_eq!(count_day(&fast, &d).await.unwrap(), rows.len() as u64);

    // Then the held delete lands.
    let outcome = old_finish.await.unwrap();
    assert_eq!(proxy.held(), 1, "the delete was held");
    assert!(
        matches!(outcome, Err(ImportError::Fenced { fence: 2, .. })),
        "{outcome:?}"
    );
    assert_eq!(day_keys(&fast, &d).await.unwrap(), sorted_keys(&rows));
    assert!(fences(&db, &d).await.iter().all(|f| *f == 3));
    let rec = record(&db, &d).await;
    assert_eq!(rec.get_str("state").unwrap(), "done");
    assert_eq!(number(&rec, "fence"), 3);
}

/// An older import's batch that reaches the server after a newer import finished writes
/// nothing: not over the newer rows, and not a row the newer export lacks.
#[tokio::test]
async fn a_late_batch_of_an_older_import_writes_nothing() {
    let mongo = TestMongo::start();
    let Race {
        db,
        proxy,
        slow,
        fast,
    } = Race::start(&mongo, "late_batch", 600_000).await;
    let rows = day_rows("BMC", "2026-02-09");
    let d = day("BMC", "2026-02-09");
    // The older export had one more line than the newer one.
    let (newer, extra) = rows.split_at(rows.len() - 1);

    let mut old = slow.begin(&d, "job-1").await.unwrap();
    old.write(&newer[..100]).await.unwrap();
    proxy.hold_next(&mongo_command("update"), Duration::from_secs(6));
    // The row the newer export lacks comes first, so only the guard can stop it.
    let mut late: Vec<Transaction> = extra.to_vec();
    late.extend_from_slice(&newer[100..300]);
    let old_write = tokio::spawn(async move {
        let res = old.write(&late).await;
        (res, old)
    });

    // The same job runs again elsewhere (its first run looks dead) and finishes the day.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        import_as(&fast, &d, "job-1", newer).await,
        (newer.len() as u64, 0),
        "the older rows were all overwritten, so none was stale"
    );
    let (res, _old) = old_write.await.unwrap();
    assert_eq!(proxy.held(), 1, "the batch was held");
    assert!(
        matches!(res, Err(ImportError::Fenced { fence: 1, .. })),
        "{res:?}"
    );
    assert_eq!(day_keys(&fast, &d).await.unwrap(), sorted_keys(newer));
    assert!(fences(&db, &d).await.iter().all(|f| *f == 2));
    assert_eq!(record(&db, &d).await.get_str("state").unwrap(), "done");
}

/// Rows written before imports were fenced (no `fence` field) are treated as the oldest: the
/// next import replaces or removes them.
#[tokio::test]
async fn rows_without_a_fence_are_replaced_or_removed() {
    let mongo = TestMongo::start();
    let db = mongo.database(&TestMongo::unique_db("legacy")).await;
    let importer = Importer::new(db.clone(), "test").with_timeouts(quick(600_000));
    importer.ensure_indexes().await.unwrap();
    let rows = day_rows("BETA", "2026-02-09");
    let d = day("BETA", "2026-02-09");
    let now = DateTime::now();
    let mut legacy: Vec<mongodb::bson::Document> = rows[..10]
        .iter()
        .map(|r| fetch_worker::pipeline::import::transaction_document(r, "v1", now).unwrap())
        .collect();
    let mut gone = legacy[0].clone();
    gone.insert("_id", "BETA|1|2026-02-09|0000000000000000|0");
    legacy.push(gone);
    db.collection("transactions")
        .insert_many(legacy)
        .await
        .unwrap();
    db.collection("imports")
        .insert_one(doc! {"_id": d.record_id(), "state": "done", "untilMs": 0i64})
        .await
        .unwrap();
    let (written, removed) = import_as(&importer, &d, "job", &rows).await;
    assert_eq!((written, removed), (rows.len() as u64, 1));
    assert_eq!(day_keys(&importer, &d).await.unwrap(), sorted_keys(&rows));
    assert_eq!(number(&record(&db, &d).await, "fence"), 1);
}

/// A takeover of an unfinished import waits out the old writes before deleting stale rows;
/// during that wait it keeps renewing its lease, so another job of the day keeps waiting
/// instead of taking the day over (and losing it back), even when the wait outlasts a lease.
#[tokio::test]
async fn a_takeover_keeps_its_lease_while_it_waits_out_old_writes() {
    let mongo = TestMongo::start();
    let db = mongo.database(&TestMongo::unique_db("renew")).await;
    // A 2 s lease, renewed every 667 ms while the import waits 1 s + the 2 s margin. The check
    // below comes 2.5 s in: past one lease from the last write, and it fails only if no
    // renewal lands for 1.8 s (a loaded machine once delayed them past a 1.2 s lease).
    let importer = Importer::new(db.clone(), "test").with_timeouts(ImportTimeouts {
        write_max_time: Duration::from_secs(1),
        ..quick(2_000)
    });
    importer.ensure_indexes().await.unwrap();
    let rows = day_rows("BMC", "2026-02-09");
    let d = day("BMC", "2026-02-09");
    let mut crashed = importer.begin(&d, "job-1").await.unwrap();
    crashed.write(&rows[..50]).await.unwrap();
    drop(crashed);
    let mut again = importer.begin(&d, "job-1").await.unwrap();
    again.write(&rows).await.unwrap();
    let finish = tokio::spawn(async move { again.finish().await });
    // Past one lease from the last write, another job still finds the day busy.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        matches!(
            importer.check_free(&d, "job-2").await,
            Err(ImportError::Busy { .. })
        ),
        "the waiting import kept its lease"
    );
    assert_eq!(finish.await.unwrap().unwrap(), (rows.len() as u64, 0));
    assert_eq!(day_keys(&importer, &d).await.unwrap(), sorted_keys(&rows));
}
