//! MongoDB: typed transactions, file records and monitor entries, imported idempotently.
//!
//! # Collections (the app's models)
//!
//! - `transactions` (`Transaction`): one document per rd5000 row, `_id` = the row key (see
//!   [`crate::pipeline::record`]), money as Decimal128, `date` as a BSON date (midnight UTC),
//!   plus `importId` (a UUID string) and `importedAt`. Index `{branch, date, pos}`.
//! - `filerecords` (`FileRecord`): one per downloaded file, unique per
//!   `{branch, pos, date, filename}`; `status` goes `raw` → `parsed` or `error`.
//! - `monitorentries` (`MonitorEntry`): `{branch, pos, date, note, createdAt}` for date
//!   mismatches and for listing or download failures that used up the job's attempts.
//! - `imports`: one record per (branch, pos, date): the lease of the import that runs
//!   (`untilMs`, a number, so expiry compares the same on every server), `state` `running` or
//!   `done`, and the last import's `importId`, `rows`, `startedAt`, `finishedAt`.
//!
//! # The import guarantee
//!
//! Importing a day runs under a lease (its `imports` record, renewed per batch), so two imports
//! of the same day never interleave; a second one fails with a retryable error and runs later.
//! The record is written before any row, so a day without a record has no rows: its import
//! uses plain inserts (as fast as a bare `insert_many`). Otherwise every row is replaced in
//! place under its row key (`_id`) with this import's `importId`, and at the end the day's
//! rows that carry another `importId` (rows no longer in the export) are deleted. Hence:
//!
//! - **after any import finishes, the day holds exactly one document per row of the export**,
//!   whether the import was a first run, a retry, a duplicate job, or a re-run after a crash at
//!   any point (a crashed import leaves rows that the next one replaces or deletes);
//! - **during an import, readers never see a row twice** (`_id` is the row key), and never lose
//!   a row that is in both the old and the new export (it is replaced in place). A first import
//!   of a day becomes visible batch by batch; rows that disappeared from the export vanish at
//!   the end. A reader that needs a finished day checks that its `imports` record is `done`.

use std::time::Duration;

use chrono::NaiveDate;
use futures_util::TryStreamExt;
use mongodb::bson::{self, Bson, DateTime, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{IndexOptions, InsertManyOptions};
use mongodb::{Collection, Database, IndexModel};
use rust_decimal::Decimal;

use super::day::{Branch, BusinessDate, PosNo};
use super::record::Transaction;

/// How long a day's import lease lasts without renewal, by default. Renewed with every batch;
/// after a crash the day can be imported again once it has run out.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

/// Rows written per round trip, by default.
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// An error of the importer.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// MongoDB failed or could not be reached.
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// Another import of the same day holds the lease.
    #[error("another import of {day} is running")]
    Busy {
        /// `branch|pos|date`.
        day: String,
    },
    /// A value could not be converted for MongoDB.
    #[error("cannot store row {row_key}: {reason}")]
    Convert {
        /// The row.
        row_key: String,
        /// What failed.
        reason: String,
    },
}

impl ImportError {
    /// True when retrying later can succeed (everything but a conversion failure).
    pub fn is_transient(&self) -> bool {
        !matches!(self, ImportError::Convert { .. })
    }
}

/// One (branch, pos, date).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    /// Branch code.
    pub branch: String,
    /// POS number (1 or 2).
    pub pos: u16,
    /// Business date.
    pub date: NaiveDate,
}

impl Day {
    /// The day named by validated parts. `None` only if the date does not exist in the
    /// calendar, which [`BusinessDate::parse`] already rules out.
    pub fn from_parts(branch: &Branch, pos: PosNo, date: BusinessDate) -> Option<Day> {
        let date = NaiveDate::from_ymd_opt(
            i32::from(date.year()),
            u32::from(date.month()),
            u32::from(date.day()),
        )?;
        Some(Day {
            branch: branch.as_str().to_string(),
            pos: u16::from(pos.get()),
            date,
        })
    }

    fn lease_id(&self) -> String {
        format!("{}|{}|{}", self.branch, self.pos, self.date)
    }

    fn filter(&self) -> Document {
        doc! {"branch": &self.branch, "pos": i32::from(self.pos), "date": bson_date(self.date)}
    }
}

/// A file record's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// Downloaded, not yet combined.
    Raw,
    /// Combined and imported.
    Parsed,
    /// Something failed; see `error`.
    Error,
}

impl FileStatus {
    fn as_str(self) -> &'static str {
        match self {
            FileStatus::Raw => "raw",
            FileStatus::Parsed => "parsed",
            FileStatus::Error => "error",
        }
    }
}

/// What is known of a downloaded file.
#[derive(Debug, Clone)]
pub struct FileRecord {
    /// File name (`a_BMC_1_rd5000_2026-02-09_20-00_.csv`).
    pub filename: String,
    /// `rd5000`, `rd5500`, …
    pub file_type: String,
    /// `local` or `gridfs`.
    pub provider: String,
    /// Path (local) or file id (GridFS).
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub checksum: String,
}

/// Writes one database's collections.
#[derive(Debug, Clone)]
pub struct Importer {
    db: Database,
    owner: String,
    lease: Duration,
}

impl Importer {
    /// An importer on `db`; `owner` names this process in leases (for diagnosis).
    pub fn new(db: Database, owner: impl Into<String>) -> Importer {
        Importer {
            db,
            owner: owner.into(),
            lease: DEFAULT_LEASE,
        }
    }

    /// Sets how long a day's lease lasts without renewal.
    pub fn with_lease(mut self, lease: Duration) -> Importer {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn transactions(&self) -> Collection<Document> {
        self.db.collection("transactions")
    }

    fn file_records(&self) -> Collection<Document> {
        self.db.collection("filerecords")
    }

    fn monitor_entries(&self) -> Collection<Document> {
        self.db.collection("monitorentries")
    }

    fn locks(&self) -> Collection<Document> {
        self.db.collection("imports")
    }

    /// Creates the indexes (idempotent; run at start-up).
    ///
    /// # Errors
    ///
    /// MongoDB errors.
    pub async fn ensure_indexes(&self) -> Result<(), ImportError> {
        let index = |keys: Document, unique: bool| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().unique(unique).build())
                .build()
        };
        self.transactions()
            .create_index(index(doc! {"branch": 1, "date": 1, "pos": 1}, false))
            .await?;
        self.file_records()
            .create_index(index(
                doc! {"branch": 1, "pos": 1, "date": 1, "filename": 1},
                true,
            ))
            .await?;
        self.monitor_entries()
            .create_index(index(doc! {"branch": 1, "pos": 1, "date": 1}, false))
            .await?;
        Ok(())
    }

    /// Records a downloaded file (status `raw`), replacing an earlier record of it.
    ///
    /// # Errors
    ///
    /// MongoDB errors.
    pub async fn record_file(&self, day: &Day, file: &FileRecord) -> Result<(), ImportError> {
        let mut key = day.filter();
        key.insert("filename", &file.filename);
        let update = doc! {
            "$set": {
                "fileType": &file.file_type,
                "storage": {"provider": &file.provider, "path": &file.path},
                "size": file.size as i64,
                "checksum": &file.checksum,
                "fetchedAt": DateTime::now(),
                "status": FileStatus::Raw.as_str(),
                "error": Bson::Null,
            },
        };
        self.file_records()
            .update_one(key, update)
            .upsert(true)
            .await?;
        Ok(())
    }

    /// Sets the status (and error text) of a day's file records named in `filenames`.
    ///
    /// # Errors
    ///
    /// MongoDB errors.
    pub async fn mark_files(
        &self,
        day: &Day,
        filenames: &[String],
        status: FileStatus,
        error: Option<&str>,
    ) -> Result<(), ImportError> {
        let mut filter = day.filter();
        filter.insert("filename", doc! {"$in": filenames});
        let update = doc! {"$set": {
            "status": status.as_str(),
            "error": error.map(Bson::from).unwrap_or(Bson::Null),
        }};
        self.file_records().update_many(filter, update).await?;
        Ok(())
    }

    /// Writes a monitor entry (`note` says what happened).
    ///
    /// # Errors
    ///
    /// MongoDB errors.
    pub async fn monitor(&self, day: &Day, note: &str) -> Result<(), ImportError> {
        self.monitor_entries()
            .insert_one(doc! {
                "branch": &day.branch,
                "pos": day.pos.to_string(),
                "date": day.date.to_string(),
                "note": note,
                "createdAt": DateTime::now(),
            })
            .await?;
        Ok(())
    }

    /// Starts importing `day`: takes its lease.
    ///
    /// # Errors
    ///
    /// [`ImportError::Busy`] when another import holds the lease; MongoDB errors.
    pub async fn begin(&self, day: &Day) -> Result<DayImport<'_>, ImportError> {
        let id = day.lease_id();
        let import_id = uuid::Uuid::new_v4().to_string();
        let first = self.take_lease(&id, &import_id).await?;
        Ok(DayImport {
            importer: self,
            day: day.clone(),
            lease: id,
            import_id,
            existing: !first,
            written: 0,
        })
    }

    /// Takes the day's lease.
    ///
    /// # Returns
    ///
    /// `true` when this is the day's first import ever: its record did not exist, so no row
    /// of the day was ever written (every import writes the record before any row).
    async fn take_lease(&self, id: &str, import_id: &str) -> Result<bool, ImportError> {
        let now = DateTime::now().timestamp_millis();
        let until = now + self.lease.as_millis() as i64;
        let record = doc! {
            "_id": id, "owner": &self.owner, "importId": import_id, "untilMs": until,
            "state": "running", "startedAt": DateTime::now(),
        };
        // A day never imported: create its record. A finished or crashed import (lease run
        // out): take the record over.
        match self.locks().insert_one(record.clone()).await {
            Ok(_) => return Ok(true),
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let taken = self
            .locks()
            .find_one_and_replace(doc! {"_id": id, "untilMs": {"$lt": now}}, record)
            .await?;
        match taken {
            Some(_) => Ok(false),
            None => Err(ImportError::Busy {
                day: id.to_string(),
            }),
        }
    }
}

/// An import of one day in progress (holding its lease).
#[derive(Debug)]
pub struct DayImport<'a> {
    importer: &'a Importer,
    day: Day,
    lease: String,
    import_id: String,
    /// Whether the day may have rows already (it was imported, or began to be, before): then
    /// rows are upserted and rows of other imports deleted at the end; else plain inserts.
    existing: bool,
    written: u64,
}

impl DayImport<'_> {
    /// Writes a batch of the day's transactions and renews the lease.
    ///
    /// # Errors
    ///
    /// MongoDB errors; [`ImportError::Busy`] when the lease was lost (it expired and another
    /// import took it).
    pub async fn write(&mut self, batch: &[Transaction]) -> Result<(), ImportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = DateTime::now();
        let docs = batch
            .iter()
            .map(|t| transaction_document(t, &self.import_id, now))
            .collect::<Result<Vec<_>, _>>()?;
        let coll = self.importer.transactions();
        let mut upsert = self.existing;
        if !upsert {
            let opts = InsertManyOptions::builder().ordered(false).build();
            match coll.insert_many(&docs).with_options(opts).await {
                Ok(_) => {}
                // Rows left by a crashed import of this day: write this batch as upserts.
                Err(e) if is_duplicate_key(&e) => upsert = true,
                Err(e) => return Err(e.into()),
            }
        }
        if upsert {
            self.existing = true;
            let updates: Vec<Document> = docs
                .into_iter()
                .map(|d| {
                    let id = d.get("_id").cloned().unwrap_or(Bson::Null);
                    doc! {"q": {"_id": id}, "u": d, "upsert": true}
                })
                .collect();
            let reply = self
                .importer
                .db
                .run_command(doc! {"update": "transactions", "updates": updates, "ordered": false})
                .await?;
            if let Ok(errors) = reply.get_array("writeErrors")
                && let Some(first) = errors.first()
            {
                return Err(ImportError::Convert {
                    row_key: "?".into(),
                    reason: format!("write error: {first}"),
                });
            }
        }
        self.written += batch.len() as u64;
        self.renew().await
    }

    async fn renew(&self) -> Result<(), ImportError> {
        let until = DateTime::now().timestamp_millis() + self.importer.lease.as_millis() as i64;
        let res = self
            .importer
            .locks()
            .update_one(
                doc! {"_id": &self.lease, "importId": &self.import_id},
                doc! {"$set": {"untilMs": until}},
            )
            .await?;
        if res.matched_count == 0 {
            return Err(ImportError::Busy {
                day: self.lease.clone(),
            });
        }
        Ok(())
    }

    /// Finishes the import: deletes the day's rows of other imports, releases the lease.
    ///
    /// # Returns
    ///
    /// `(written, removed)`: rows written by this import, stale rows deleted.
    ///
    /// # Errors
    ///
    /// MongoDB errors. The lease then expires by itself.
    pub async fn finish(self) -> Result<(u64, u64), ImportError> {
        self.renew().await?;
        let removed = if self.existing {
            let mut stale = self.day.filter();
            stale.insert("importId", doc! {"$ne": &self.import_id});
            self.importer
                .transactions()
                .delete_many(stale)
                .await?
                .deleted_count
        } else {
            0
        };
        self.importer
            .locks()
            .update_one(
                doc! {"_id": &self.lease, "importId": &self.import_id},
                doc! {"$set": {
                    "state": "done", "untilMs": 0i64, "finishedAt": DateTime::now(),
                    "rows": self.written as i64, "removed": removed as i64,
                }},
            )
            .await?;
        Ok((self.written, removed))
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .is_some_and(|errs| errs.iter().any(|w| w.code == 11000)),
        ErrorKind::Command(c) => c.code == 11000,
        _ => e.to_string().contains("E11000") || e.to_string().contains("duplicate key"),
    }
}

/// Midnight UTC of `date`, the BSON form of a calendar date.
pub fn bson_date(date: NaiveDate) -> DateTime {
    let millis = date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0);
    DateTime::from_millis(millis)
}

fn decimal(row_key: &str, value: Option<Decimal>) -> Result<Bson, ImportError> {
    match value {
        None => Ok(Bson::Null),
        Some(d) => d
            .to_string()
            .parse::<bson::Decimal128>()
            .map(Bson::Decimal128)
            .map_err(|e| ImportError::Convert {
                row_key: row_key.to_string(),
                reason: format!("{d} as Decimal128: {e}"),
            }),
    }
}

fn opt(s: &Option<String>) -> Bson {
    s.as_ref().map(Bson::from).unwrap_or(Bson::Null)
}

/// The stored form of a transaction.
///
/// # Errors
///
/// [`ImportError::Convert`] when a decimal does not fit Decimal128 (never for export values).
pub fn transaction_document(
    t: &Transaction,
    import_id: &str,
    now: DateTime,
) -> Result<Document, ImportError> {
    let k = t.row_key.as_str();
    Ok(doc! {
        "_id": k,
        "branch": &t.branch,
        "pos": i32::from(t.pos),
        "date": bson_date(t.date),
        "time": &t.time,
        "orNumber": &t.or_number,
        "transactionNumber": &t.transaction_number,
        "productCode": &t.product_code,
        "productName": opt(&t.product_name),
        "quantity": decimal(k, t.quantity)?,
        "unitPrice": decimal(k, t.unit_price)?,
        "amount": decimal(k, t.amount)?,
        "discount": decimal(k, t.discount)?,
        "departmentCode": &t.department_code,
        "departmentName": opt(&t.department_name),
        "discountCode": &t.discount_code,
        "discountName": opt(&t.discount_name),
        "orderType": &t.order_type,
        "orderTypeName": opt(&t.order_type_name),
        "daypart": t.daypart.label(),
        "vatFlag": &t.vat_flag,
        "vatDiv": decimal(k, t.vat_div)?,
        "vatAmount": decimal(k, t.vat_amount)?,
        "vatDiscount": decimal(k, t.vat_discount)?,
        "vatPrice": decimal(k, t.vat_price)?,
        "paymentCode": opt(&t.payment_code),
        "paymentName": opt(&t.payment_name),
        "phone": opt(&t.phone),
        "sourceFile": &t.source_file,
        "sourceLine": t.source_line as i64,
        "importId": import_id,
        "importedAt": now,
    })
}

/// Counts a day's stored transactions (for tests and reports).
///
/// # Errors
///
/// MongoDB errors.
pub async fn count_day(importer: &Importer, day: &Day) -> Result<u64, ImportError> {
    Ok(importer
        .transactions()
        .count_documents(day.filter())
        .await?)
}

/// The row keys of a day's stored transactions, sorted (for tests).
///
/// # Errors
///
/// MongoDB errors.
pub async fn day_keys(importer: &Importer, day: &Day) -> Result<Vec<String>, ImportError> {
    let mut cursor = importer
        .transactions()
        .find(day.filter())
        .projection(doc! {"_id": 1})
        .await?;
    let mut keys = Vec::new();
    while let Some(d) = cursor.try_next().await? {
        if let Ok(k) = d.get_str("_id") {
            keys.push(k.to_string());
        }
    }
    keys.sort();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_dates_are_midnight_utc() {
        let d = NaiveDate::from_ymd_opt(2026, 2, 9).unwrap();
        assert_eq!(bson_date(d).timestamp_millis(), 1_770_595_200_000);
    }

    #[test]
    fn decimals_keep_their_scale() {
        let d: Decimal = "388.000".parse().unwrap();
        let b = decimal("k", Some(d)).unwrap();
        match b {
            Bson::Decimal128(x) => assert_eq!(x.to_string(), "388.000"),
            other => panic!("{other:?}"),
        }
        assert_eq!(decimal("k", None).unwrap(), Bson::Null);
    }
}
