//! The baseline of `bench/pipeline.sh`: the same rows the pipeline imports, written by a plain
//! batched `insert_many` loop, so the bench can say what the import costs over the bare write.
//!
//! ```text
//! plain_insert insert --uri URI --db NAME --jsonl FILE [--batch 1000]
//! plain_insert count  --uri URI --db NAME
//! plain_insert drop   --uri URI --db NAME [--db NAME ...]
//! ```
//!
//! - `insert` reads the typed transactions of `fetch-worker combine --format jsonl` (parsed
//!   before the clock starts), creates the importer's indexes (as a worker does at start-up,
//!   also untimed), then, timed: for every `--batch` rows in file order, builds the documents
//!   with [`transaction_document`] (the importer's own document shape, one import id, one
//!   `importedAt` per batch) and sends one unordered `insert_many` (as the importer's first
//!   import of a day does). Prints one JSON line:
//!   `{"rows":…,"batches":…,"elapsed_ms":…,"rows_per_s":…,"parse_ms":…}`.
//! - `count` prints the number of documents in the database's `transactions`.
//! - `drop` drops the databases (the bench's clean-up on a real MongoDB).
//!
//! The database must not hold these rows already (the bench gives it a fresh one): a
//! duplicate key fails the run rather than being measured.

use std::io::BufRead;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fetch_worker::pipeline::import::{Importer, transaction_document};
use fetch_worker::pipeline::record::Transaction;
use mongodb::bson::{DateTime, Document, doc};
use mongodb::options::InsertManyOptions;

#[derive(Debug, Parser)]
#[command(about = "Plain batched insert_many of combined transactions (bench baseline)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Insert the JSONL's transactions in batches, timed.
    Insert {
        /// MongoDB URI (its database part is ignored; see --db).
        #[arg(long)]
        uri: String,
        /// Database to write.
        #[arg(long)]
        db: String,
        /// Output of `fetch-worker combine --format jsonl`.
        #[arg(long)]
        jsonl: std::path::PathBuf,
        /// Rows per insert_many.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
    /// Print how many documents `transactions` holds.
    Count {
        /// MongoDB URI.
        #[arg(long)]
        uri: String,
        /// Database to count in.
        #[arg(long)]
        db: String,
    },
    /// Drop databases.
    Drop {
        /// MongoDB URI.
        #[arg(long)]
        uri: String,
        /// Databases to drop.
        #[arg(long, required = true)]
        db: Vec<String>,
    },
}

fn read_jsonl(path: &std::path::Path) -> anyhow::Result<Vec<Transaction>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let t: Transaction = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}", path.display(), i + 1))?;
        rows.push(t);
    }
    Ok(rows)
}

async fn insert(uri: &str, db: &str, jsonl: &std::path::Path, batch: usize) -> anyhow::Result<()> {
    let parse_started = Instant::now();
    let rows = read_jsonl(jsonl)?;
    let parse_ms = parse_started.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        !rows.is_empty(),
        "{} holds no transactions",
        jsonl.display()
    );

    let client = mongodb::Client::with_uri_str(uri)
        .await
        .context("connecting to MongoDB")?;
    let database = client.database(db);
    Importer::new(database.clone(), "plain-insert")
        .ensure_indexes()
        .await
        .context("creating the importer's indexes")?;
    let coll = database.collection::<Document>("transactions");
    let import_id = uuid::Uuid::new_v4().to_string();
    let batch = batch.max(1);

    let started = Instant::now();
    let mut batches = 0u64;
    for chunk in rows.chunks(batch) {
        let now = DateTime::now();
        let docs = chunk
            .iter()
            .map(|t| transaction_document(t, &import_id, now))
            .collect::<Result<Vec<_>, _>>()?;
        let opts = InsertManyOptions::builder().ordered(false).build();
        coll.insert_many(&docs)
            .with_options(opts)
            .await
            .with_context(|| format!("insert_many of batch {}", batches + 1))?;
        batches += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "rows": rows.len(),
            "batches": batches,
            "elapsed_ms": (elapsed * 1e3 * 10.0).round() / 10.0,
            "rows_per_s": (rows.len() as f64 / elapsed).round(),
            "parse_ms": (parse_ms * 10.0).round() / 10.0,
        })
    );
    Ok(())
}

async fn count(uri: &str, db: &str) -> anyhow::Result<()> {
    let client = mongodb::Client::with_uri_str(uri)
        .await
        .context("connecting to MongoDB")?;
    let n = client
        .database(db)
        .collection::<Document>("transactions")
        // Rows only: the importer's fence guards (one per day) have no branch.
        .count_documents(doc! {"branch": {"$exists": true}})
        .await
        .context("counting transactions")?;
    println!("{n}");
    Ok(())
}

async fn drop_dbs(uri: &str, dbs: &[String]) -> anyhow::Result<()> {
    let client = mongodb::Client::with_uri_str(uri)
        .await
        .context("connecting to MongoDB")?;
    for db in dbs {
        client
            .database(db)
            .drop()
            .await
            .with_context(|| format!("dropping {db}"))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Insert {
            uri,
            db,
            jsonl,
            batch,
        } => insert(&uri, &db, &jsonl, batch).await,
        Cmd::Count { uri, db } => count(&uri, &db).await,
        Cmd::Drop { uri, db } => drop_dbs(&uri, &db).await,
    }
}
