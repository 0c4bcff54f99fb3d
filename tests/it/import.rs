//! The MongoDB importer against a real MongoDB-wire server: counts, Decimal128, idempotent
//! re-imports, crash recovery, leases, indexes.

use std::path::PathBuf;

use chrono::NaiveDate;
use fetch_worker::pipeline::combine::{CollectSink, CombineOptions, combine_paths};
use fetch_worker::pipeline::import::{Day, ImportError, Importer, count_day, day_keys};
use fetch_worker::pipeline::record::Transaction;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, DateTime, doc};

use crate::support::mongo::TestMongo;

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
        branch: branch.into(),
        pos: 1,
        date: NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
    }
}

async fn import(importer: &Importer, d: &Day, rows: &[Transaction]) -> (u64, u64) {
    let mut run = importer.begin(d).await.unwrap();
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

/// A crash mid-import (lease left behind, half the rows written, plus a row the export no
/// longer has) ends, after the lease expires and the import runs again, with exactly the
/// export's rows.
#[tokio::test]
async fn a_crashed_import_is_repaired_by_the_next_one() {
    let mongo = TestMongo::start();
    let db = mongo.database(&TestMongo::unique_db("crash")).await;
    let importer = Importer::new(db.clone(), "test");
    importer.ensure_indexes().await.unwrap();
    let rows = day_rows("GOA", "2026-02-09");
    let d = day("GOA", "2026-02-09");

    // A row from an older export that is gone now.
    import(&importer, &d, &rows[..1]).await;
    let mut ghost = fetch_worker::pipeline::import::transaction_document(
        &rows[0],
        "old-import",
        DateTime::now(),
    )
    .unwrap();
    ghost.insert("_id", "GOA|1|2026-02-09|ffffffffffffffff|0");
    db.collection("transactions")
        .insert_one(ghost)
        .await
        .unwrap();

    // The crash: half written, never finished.
    let mut run = importer.begin(&d).await.unwrap();
    run.write(&rows[..rows.len() / 2]).await.unwrap();
    drop(run);

    // While the lease lives, another import is refused (retryable).
    let busy = importer.begin(&d).await.unwrap_err();
    assert!(matches!(busy, ImportError::Busy { .. }) && busy.is_transient());

    // The lease expires.
    db.collection::<mongodb::bson::Document>("imports")
        .update_many(doc! {}, doc! {"$set": {"untilMs": 0i64}})
        .await
        .unwrap();
    let (written, removed) = import(&importer, &d, &rows).await;
    assert_eq!(written, rows.len() as u64);
    assert_eq!(removed, 1);
    let mut expected: Vec<String> = rows.iter().map(|r| r.row_key.clone()).collect();
    expected.sort();
    assert_eq!(day_keys(&importer, &d).await.unwrap(), expected);
    let records: Vec<mongodb::bson::Document> = db
        .collection("imports")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].get_str("state").unwrap(), "done");
    let until = match records[0].get("untilMs") {
        Some(mongodb::bson::Bson::Int64(n)) => *n,
        Some(mongodb::bson::Bson::Int32(n)) => i64::from(*n),
        other => panic!("untilMs is {other:?}"),
    };
    assert_eq!(until, 0, "lease released");
}
