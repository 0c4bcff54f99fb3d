//! MongoDB: typed transactions, file records and monitor entries, imported exactly once per
//! row, under crashes, retries, duplicate jobs and slow or delayed writes.
//!
//! # Collections (the app's models)
//!
//! - `transactions` (`Transaction`): one document per rd5000 row, `_id` = the row key (see
//!   [`crate::pipeline::record`]), money as Decimal128, `date` as a BSON date (midnight UTC),
//!   plus `importId` (a UUID string), `importedAt` and `fence` (the number of the import that
//!   wrote it). Index `{branch, date, pos}`. The collection also holds one *fence guard*
//!   document per imported day, `{_id: "~fence|<branch>|<pos>|<date>", kind: "importFence",
//!   fence}`: it has no `branch`, `date` or `pos`, so no query for transactions of a day ever
//!   sees it (see "Why the guard lives in `transactions`").
//! - `filerecords` (`FileRecord`): one per downloaded file, unique per
//!   `{branch, pos, date, filename}`; `status` goes `raw` → `parsed` or `error`.
//! - `monitorentries` (`MonitorEntry`): `{branch, pos, date, note, createdAt}` for date
//!   mismatches and for failures that ended a job for good.
//! - `imports`: one record per (branch, pos, date), `_id` `<branch>|<pos>|<date>`: `fence` (a
//!   number that only grows, one per import that began), `state` (`running` or `done`), the
//!   `job` that runs or ran it (an opaque text from the caller, for example the BullMQ job
//!   id), its lease `untilMs` (renewed with every batch; a number, so expiry compares the same
//!   on every server), `owner` (the process, for diagnosis), and the last import's `importId`,
//!   `rows`, `removed`, `startedAt`, `finishedAt`. **A day is present exactly when its record
//!   says `done`**: the producer's missing-day report reads this, never "some row exists".
//!
//! # The guarantee
//!
//! When an import's [`DayImport::finish`] returns `Ok`, the day holds exactly one document per
//! row of the export that import read, and its record says `done`; the same holds after any
//! later finished import of the day, whatever happened in between: a crash at any point, a
//! job handed back at shutdown, a MongoDB outage, a duplicate job of the same day, or requests
//! that reach the server long after they were sent (a GC pause, a partition, a slow primary).
//! It holds on a standalone server, without transactions.
//!
//! # The design: fencing
//!
//! Each import of a day takes the next **fence** number `F` from the day's record with a
//! compare-and-swap (`fence: old` → `fence: old + 1`), so no two imports ever hold the same
//! number, and a later import always holds a larger one. Then:
//!
//! 1. **It raises the day's fence guard to `F`** (an upsert on `{_id: guard, fence: {$lte:
//!    F}}`: if the guard is already above `F`, the upsert collides with the guard's `_id` and
//!    fails with a duplicate-key error, so `F` learns it is fenced). It notes the time `t_F`.
//! 2. **Every batch is one ordered `update` command**: first the guard check (the same upsert),
//!    then one statement per row, `{q: {_id: key, fence: {$lte: F}}, u: <row with fence F>,
//!    upsert: true}`. An ordered command stops at its first error, so if the guard is above
//!    `F` when the command *executes*, none of its rows is written: the check happens on the
//!    server at execution time, not when the request was sent, however late it arrives. A row
//!    already written by a newer import (fence above `F`) does not match its statement; the
//!    upsert then collides on `_id` and fails, so a newer row is never overwritten. Each reply
//!    is checked: a duplicate-key error means "fenced", and `n` must equal the statements.
//!    Every command carries `maxTimeMS` (`W`), so its execution ends within `W` of its start.
//! 3. **Finish** renews the lease (a CAS on `fence: F`, which fails if a newer import began),
//!    then, if the import it took over from was unfinished (`running`), waits until `t_F + W`
//!    plus a margin, then deletes the day's rows with `fence < F`, then marks the record
//!    `done` with a CAS on `fence: F`, whose matched count must be 1. A day's first import
//!    (no record before it) skips the delete: every import writes the record before any row,
//!    so a day without a record has no rows (and the delete would scan on servers that do
//!    not use the index for it).
//!
//! **Invariant.** When `F`'s `done` CAS matches: (a) every row of `F`'s export is stored with
//! fence `F` (each batch was acknowledged, and nothing newer overwrote it: a newer import
//! would have moved the fence first, failing the CAS); (b) no row with fence `< F` exists; (c)
//! no row with fence `> F` exists (a newer import writes rows only after its own CAS moved the
//! fence, which would have failed ours). So the day is exactly `F`'s export.
//!
//! **Why each interleaving keeps it**, for an older import `E < F` (alive, stalled, or dead
//! with requests still in flight):
//!
//! - *`E` writes a row after `F` wrote it*: the row has fence `F > E`; `E`'s statement does not
//!   match, its upsert collides, nothing changes.
//! - *`E`'s batch executes after `F` raised the guard*: the guard check fails first; nothing of
//!   the batch is written.
//! - *`E`'s batch passed the guard check before `F` raised it* and inserts a row that `F`'s
//!   export lacks: that command started before `t_F` and ends (or is cut by `maxTimeMS`)
//!   before `t_F + W`; `F` deletes rows with fence `< F` only after `t_F + W`, so the row is
//!   gone before `F` says `done`. This is the only case that needs the wait, and only when the
//!   import taken over was unfinished: a `done` predecessor's requests have all returned, and
//!   by induction so have those of every import before it.
//! - *`E`'s stale-row delete arrives late* (the reproduced loss: a delete held for seconds by
//!   the network): it removes rows with fence `< E` only, never `F`'s rows.
//! - *`E` marks the day `done` late*: its CAS on `fence: E` fails; `E` reports
//!   [`ImportError::Fenced`] and writes nothing more.
//! - *`E` renews its lease late*: the same CAS fails; `E` stops.
//! - *A newer import `G > F` begins while `F` runs*: everything above holds with `F` as the
//!   older one; `F` stops with [`ImportError::Fenced`].
//!
//! Rows of the previous version (without `fence`) are given `fence: 0` at the start of an
//! import of their day, so the `$lte` conditions treat them as oldest.
//!
//! # Who may take a day over
//!
//! [`Importer::begin`] decides from the record (see [`decide`]): a day never imported starts at
//! fence 1; a `done` day, a day whose lease ran out, or a day whose record names the same job
//! (a re-run after a crash, a hand-back or an outage: the queue gives a job to one worker at a
//! time, so an earlier run of it is dead or about to be fenced) is taken over at once; a day
//! that another job is importing under a live lease answers [`ImportError::Busy`] with the
//! lease's end, so the caller can wait for it instead of failing.
//!
//! # Bounded waits
//!
//! The driver has no socket timeout, so every operation here is also bounded on the client
//! (`op_timeout`): a request cannot hang for minutes. `maxTimeMS` (`write_max_time`) bounds the
//! fenced writes on the server, which the design relies on (above). Server selection and
//! connection timeouts are set on the client where it is built.
//!
//! # Why the guard lives in `transactions`
//!
//! An ordered `update` command applies to one collection, and the guard check must run in
//! the same command as the row writes, on the server, to be immune to delivery delays. A
//! multi-document transaction would also do, but standalone servers (compose, the tests) have
//! none. The guard has no `branch`, `pos` or `date`, so the app's queries by day, the index
//! and the stale-row delete never see it.

use std::time::Duration;

use chrono::NaiveDate;
use futures_util::TryStreamExt;
use mongodb::bson::{self, Bson, DateTime, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use rust_decimal::Decimal;

pub use super::day::Day;
use super::record::Transaction;

/// How long a day's import lease lasts without renewal, by default. Renewed with every batch;
/// another job may take the day over once it has run out (the same job, at once).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

/// Rows written per round trip, by default.
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// The client-side bound on one MongoDB operation, by default.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(30);

/// The server-side bound (`maxTimeMS`) on one fenced write, by default.
pub const DEFAULT_WRITE_MAX_TIME: Duration = Duration::from_secs(10);

/// Added to `maxTimeMS` when waiting out an unfinished predecessor's writes: the server checks
/// the limit at interruption points, not to the millisecond.
const MAX_TIME_MARGIN: Duration = Duration::from_secs(2);

/// The duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

/// An error of the importer.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// MongoDB failed or could not be reached.
    #[error("mongodb {op}")]
    Mongo {
        /// What was being done.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
    },
    /// An operation did not answer within the client-side bound.
    #[error("mongodb {op} did not answer within {} ms", after.as_millis())]
    Timeout {
        /// What was being done.
        op: &'static str,
        /// How long it waited: the importer's `op_timeout` (`MONGO_OP_TIMEOUT_MS`).
        after: Duration,
    },
    /// The server rejected a write for a reason other than fencing.
    #[error("mongodb {op}: write error {code}: {message}")]
    Write {
        /// What was being done.
        op: &'static str,
        /// The server's error code.
        code: i32,
        /// The server's message.
        message: String,
    },
    /// A reply did not say what a correct write must (counts that do not add up).
    #[error("mongodb {op}: unexpected reply: {detail}")]
    Unexpected {
        /// What was being done.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Another job is importing the day under a live lease.
    #[error("another job ({holder}) is importing {day}; its lease runs until {until_ms}")]
    Busy {
        /// The day, as `branch|pos|date` (its `imports` record's `_id`).
        day: String,
        /// The job named by the day's record.
        holder: String,
        /// When the holder's lease runs out (ms since the Unix epoch).
        until_ms: i64,
    },
    /// A newer import of the day began: this one stopped and wrote nothing more.
    #[error("the import of {day} (fence {fence}) was taken over by a newer import")]
    Fenced {
        /// The day, as `branch|pos|date` (its `imports` record's `_id`).
        day: String,
        /// This import's fence number.
        fence: i64,
    },
    /// A value could not be converted for MongoDB.
    #[error("cannot store row {row_key}: {reason}")]
    Convert {
        /// The row's key, so a person can find it in the export.
        row_key: String,
        /// Why the value does not fit (the converter's message).
        reason: String,
    },
}

impl ImportError {
    /// True when retrying later can succeed (everything but a conversion failure).
    pub fn is_transient(&self) -> bool {
        !matches!(self, ImportError::Convert { .. })
    }

    fn mongo(op: &'static str) -> impl FnOnce(mongodb::error::Error) -> ImportError {
        move |source| ImportError::Mongo { op, source }
    }
}

/// How a [`Day`] is named in MongoDB: the BSON edge of the one day type.
trait DayDocs {
    /// The `_id` of the day's fence guard document.
    fn guard_id(&self) -> String;
    /// The filter that selects the day's rows (`date` as a BSON date, as the app stores it).
    fn filter(&self) -> Document;
}

impl DayDocs for Day {
    fn guard_id(&self) -> String {
        format!("~fence|{}", self.record_id())
    }

    fn filter(&self) -> Document {
        doc! {
            "branch": self.branch.as_str(),
            "pos": i32::from(self.pos.get()),
            "date": bson_date(self.date.naive()),
        }
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
    /// `local`, `gridfs` or `s3`.
    pub provider: String,
    /// Path (local), file id (GridFS) or object key (S3).
    pub path: String,
    /// The bucket (S3 only).
    pub bucket: Option<String>,
    /// Its size in bytes as stored; a reprocess checks the bytes again through the hash.
    pub size: u64,
    /// SHA-256 of the file's bytes, in lower-case hex, taken as they were stored; a reprocess
    /// refuses bytes that no longer match it.
    pub checksum: String,
}

/// How long the importer waits, and for what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportTimeouts {
    /// A day's lease without renewal.
    pub lease: Duration,
    /// The client-side bound on every operation.
    pub op_timeout: Duration,
    /// `maxTimeMS` of every fenced write.
    pub write_max_time: Duration,
}

impl Default for ImportTimeouts {
    fn default() -> Self {
        ImportTimeouts {
            lease: DEFAULT_LEASE,
            op_timeout: DEFAULT_OP_TIMEOUT,
            write_max_time: DEFAULT_WRITE_MAX_TIME,
        }
    }
}

/// What a day's `imports` record says, as far as taking the day over goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRecord {
    /// The fence of the last import that began (0 for a record of the previous version).
    pub fence: i64,
    /// Whether the record has a `fence` field at all.
    pub has_fence: bool,
    /// `done` (the last import finished) or not.
    pub done: bool,
    /// The job named by the record ("" when none).
    pub job: String,
    /// The lease's end, ms since the Unix epoch.
    pub until_ms: i64,
}

impl DayRecord {
    fn from_document(d: &Document) -> DayRecord {
        DayRecord {
            fence: int(d, "fence").unwrap_or(0),
            has_fence: int(d, "fence").is_some(),
            done: d.get_str("state").is_ok_and(|s| s == "done"),
            job: d.get_str("job").unwrap_or_default().to_string(),
            until_ms: int(d, "untilMs").unwrap_or(0),
        }
    }
}

/// What [`Importer::begin`] does with a day, given its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No record: the day was never imported; start at fence 1.
    Fresh,
    /// Take the day over. `unfinished`: the import before did not finish (crashed, handed back,
    /// cut off, or still running somewhere and about to be fenced), so its late writes must be
    /// waited out before stale rows are deleted.
    TakeOver {
        /// The previous import did not reach `done`.
        unfinished: bool,
    },
    /// Another job holds a live lease: wait until it runs out.
    Wait {
        /// The job holding the day.
        holder: String,
        /// The lease's end, ms since the Unix epoch.
        until_ms: i64,
    },
}

/// Decides whether `job` may import a day whose record is `record`, at `now_ms`: a pure
/// function of the record, so every case is unit-tested.
pub fn decide(record: Option<&DayRecord>, job: &str, now_ms: i64) -> Decision {
    match record {
        None => Decision::Fresh,
        Some(r) if r.done => Decision::TakeOver { unfinished: false },
        Some(r) if r.job == job || r.until_ms < now_ms => Decision::TakeOver { unfinished: true },
        Some(r) => Decision::Wait {
            holder: r.job.clone(),
            until_ms: r.until_ms,
        },
    }
}

/// Writes one database's collections.
#[derive(Debug, Clone)]
pub struct Importer {
    db: Database,
    owner: String,
    timeouts: ImportTimeouts,
}

/// The moment, in ms since the Unix epoch.
fn now_ms() -> i64 {
    DateTime::now().timestamp_millis()
}

impl Importer {
    /// An importer on `db`; `owner` names this process in `imports` records (for diagnosis).
    pub fn new(db: Database, owner: impl Into<String>) -> Importer {
        Importer {
            db,
            owner: owner.into(),
            timeouts: ImportTimeouts::default(),
        }
    }

    /// Sets how long a day's lease lasts without renewal.
    pub fn with_lease(mut self, lease: Duration) -> Importer {
        self.timeouts.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// Sets every bound at once.
    pub fn with_timeouts(mut self, timeouts: ImportTimeouts) -> Importer {
        self.timeouts = ImportTimeouts {
            lease: timeouts.lease.max(Duration::from_millis(100)),
            op_timeout: timeouts.op_timeout.max(Duration::from_millis(100)),
            write_max_time: timeouts.write_max_time.max(Duration::from_millis(10)),
        };
        self
    }

    /// The database the importer writes to, for the readiness probe and for tests that read
    /// the rows back.
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

    fn records(&self) -> Collection<Document> {
        self.db.collection("imports")
    }

    /// Runs `op` within the client-side bound. Dropping the driver's future on timeout closes
    /// its connection, so the request is not left pending on a socket we keep using.
    async fn bounded<T>(
        &self,
        op: &'static str,
        fut: impl std::future::IntoFuture<Output = Result<T, mongodb::error::Error>>,
    ) -> Result<T, ImportError> {
        match tokio::time::timeout(self.timeouts.op_timeout, fut.into_future()).await {
            Ok(res) => res.map_err(ImportError::mongo(op)),
            Err(_) => Err(ImportError::Timeout {
                op,
                after: self.timeouts.op_timeout,
            }),
        }
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
        self.bounded(
            "creating the transactions index",
            self.transactions()
                .create_index(index(doc! {"branch": 1, "date": 1, "pos": 1}, false)),
        )
        .await?;
        self.bounded(
            "creating the filerecords index",
            self.file_records().create_index(index(
                doc! {"branch": 1, "pos": 1, "date": 1, "filename": 1},
                true,
            )),
        )
        .await?;
        self.bounded(
            "creating the monitorentries index",
            self.monitor_entries()
                .create_index(index(doc! {"branch": 1, "pos": 1, "date": 1}, false)),
        )
        .await?;
        Ok(())
    }

    /// Records a downloaded file (status `raw`), replacing an earlier record of it. `storage`
    /// is `{provider, path}`, or `{provider: "s3", bucket, key}` for an S3 object.
    ///
    /// # Errors
    ///
    /// MongoDB errors.
    pub async fn record_file(&self, day: &Day, file: &FileRecord) -> Result<(), ImportError> {
        let mut key = day.filter();
        key.insert("filename", &file.filename);
        let storage = match &file.bucket {
            Some(bucket) => doc! {"provider": &file.provider, "bucket": bucket, "key": &file.path},
            None => doc! {"provider": &file.provider, "path": &file.path},
        };
        let update = doc! {
            "$set": {
                "fileType": &file.file_type,
                "storage": storage,
                "size": file.size as i64,
                "checksum": &file.checksum,
                "fetchedAt": DateTime::now(),
                "status": FileStatus::Raw.as_str(),
                "error": Bson::Null,
            },
        };
        self.bounded(
            "recording a file",
            self.file_records().update_one(key, update).upsert(true),
        )
        .await?;
        Ok(())
    }

    /// The day's file records, by file name: what a reprocess reads back from raw storage. A
    /// record whose `storage` cannot be read (no provider, no path or key) is left out and
    /// named in the second list, so the caller can say which files it could not use.
    ///
    /// # Errors
    ///
    /// MongoDB errors.
    pub async fn stored_files(
        &self,
        day: &Day,
    ) -> Result<(Vec<FileRecord>, Vec<String>), ImportError> {
        let cursor = self
            .bounded(
                "reading the day's file records",
                self.file_records()
                    .find(day.filter())
                    .sort(doc! {"filename": 1}),
            )
            .await?;
        let docs: Vec<Document> =
            tokio::time::timeout(self.timeouts.op_timeout, cursor.try_collect())
                .await
                .map_err(|_| ImportError::Timeout {
                    op: "reading the day's file records",
                    after: self.timeouts.op_timeout,
                })?
                .map_err(ImportError::mongo("reading the day's file records"))?;
        let mut files = Vec::with_capacity(docs.len());
        let mut unusable = Vec::new();
        for d in docs {
            let filename = d.get_str("filename").unwrap_or_default().to_string();
            match file_record_from(&d) {
                Some(record) => files.push(record),
                None => unusable.push(filename),
            }
        }
        Ok((files, unusable))
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
        self.bounded(
            "updating file records",
            self.file_records().update_many(filter, update),
        )
        .await?;
        Ok(())
    }

    /// Writes a monitor entry (`note` says what happened).
    ///
    /// # Errors
    ///
    /// MongoDB errors.
    pub async fn monitor(&self, day: &Day, note: &str) -> Result<(), ImportError> {
        self.bounded(
            "writing a monitor entry",
            self.monitor_entries().insert_one(doc! {
                "branch": day.branch.as_str(),
                "pos": day.pos.to_string(),
                "date": day.date.to_string(),
                "note": note,
                "createdAt": DateTime::now(),
            }),
        )
        .await?;
        Ok(())
    }

    /// Reads the day's `imports` record, if any.
    ///
    /// # Errors
    ///
    /// MongoDB errors.
    pub async fn record(&self, day: &Day) -> Result<Option<DayRecord>, ImportError> {
        let found = self
            .bounded(
                "reading the day's import record",
                self.records().find_one(doc! {"_id": day.record_id()}),
            )
            .await?;
        Ok(found.as_ref().map(DayRecord::from_document))
    }

    /// Whether `job` would have to wait for another job's import of `day` (checked before any
    /// download, so a duplicate job does not fetch a day that is being imported).
    ///
    /// # Errors
    ///
    /// [`ImportError::Busy`] when it would; MongoDB errors.
    pub async fn check_free(&self, day: &Day, job: &str) -> Result<(), ImportError> {
        let record = self.record(day).await?;
        match decide(record.as_ref(), job, now_ms()) {
            Decision::Wait { holder, until_ms } => Err(ImportError::Busy {
                day: day.record_id(),
                holder,
                until_ms,
            }),
            _ => Ok(()),
        }
    }

    /// Starts importing `day` for `job` (any text that names the unit of work; a re-run of the
    /// same job takes the day over at once): takes the next fence and raises the guard.
    ///
    /// # Errors
    ///
    /// [`ImportError::Busy`] when another job imports the day under a live lease;
    /// [`ImportError::Fenced`] when a newer import overtook this one while it began; MongoDB
    /// errors.
    pub async fn begin(&self, day: &Day, job: &str) -> Result<DayImport, ImportError> {
        let id = day.record_id();
        let import_id = uuid::Uuid::new_v4().to_string();
        // A compare-and-swap loop: another worker may move the record between our read and our
        // write; then we read again. A handful of rounds is plenty (each loss means someone
        // else began, and the next round answers Busy or takes over from them).
        for _ in 0..8 {
            let record = self.record(day).await?;
            let now = now_ms();
            let running = doc! {
                "state": "running", "job": job, "owner": &self.owner, "importId": &import_id,
                "untilMs": now + self.timeouts.lease.as_millis() as i64,
                "startedAt": DateTime::now(), "finishedAt": Bson::Null,
                "branch": day.branch.as_str(), "pos": i32::from(day.pos.get()), "date": day.date.to_string(),
            };
            let (fence, unfinished) = match decide(record.as_ref(), job, now) {
                Decision::Wait { holder, until_ms } => {
                    return Err(ImportError::Busy {
                        day: id,
                        holder,
                        until_ms,
                    });
                }
                Decision::Fresh => {
                    let mut first = running.clone();
                    first.insert("_id", &id);
                    first.insert("fence", 1i64);
                    let inserted = tokio::time::timeout(
                        self.timeouts.op_timeout,
                        self.records().insert_one(first),
                    )
                    .await;
                    match inserted {
                        Ok(Ok(_)) => (1i64, false),
                        Ok(Err(e)) if is_duplicate_key(&e) => continue,
                        Ok(Err(e)) => {
                            return Err(ImportError::mongo("creating the import record")(e));
                        }
                        Err(_) => {
                            return Err(ImportError::Timeout {
                                op: "creating the import record",
                                after: self.timeouts.op_timeout,
                            });
                        }
                    }
                }
                Decision::TakeOver { unfinished } => {
                    let Some(record) = record.as_ref() else {
                        continue;
                    };
                    let fence = record.fence + 1;
                    let filter = if record.has_fence {
                        doc! {"_id": &id, "fence": record.fence}
                    } else {
                        doc! {"_id": &id, "fence": {"$exists": false}}
                    };
                    let mut set = running.clone();
                    set.insert("fence", fence);
                    let res = self
                        .bounded(
                            "taking the day's import record",
                            self.records().update_one(filter, doc! {"$set": set}),
                        )
                        .await?;
                    if res.matched_count != 1 {
                        continue;
                    }
                    (fence, unfinished)
                }
            };
            // Rows of the previous version carry no fence: make them the oldest.
            if record.is_some() {
                let mut legacy = day.filter();
                legacy.insert("fence", doc! {"$exists": false});
                self.bounded(
                    "marking earlier rows",
                    self.transactions()
                        .update_many(legacy, doc! {"$set": {"fence": 0i64}}),
                )
                .await?;
            }
            let mut import = DayImport {
                fresh: record.is_none(),
                importer: self.clone(),
                day: day.clone(),
                import_id: import_id.clone(),
                fence,
                unfinished_predecessor: unfinished,
                guard_raised_at: tokio::time::Instant::now(),
                written: 0,
            };
            import
                .run_update("raising the fence guard", Vec::new())
                .await?;
            // `t_F` is when the raise was acknowledged: it executed no later than that, so
            // waiting from here is never too short.
            import.guard_raised_at = tokio::time::Instant::now();
            return Ok(import);
        }
        Err(ImportError::Unexpected {
            op: "taking the day's import record",
            detail: "the record kept changing under us".into(),
        })
    }
}

/// An import of one day in progress: holds fence `fence`.
#[derive(Debug)]
pub struct DayImport {
    importer: Importer,
    day: Day,
    import_id: String,
    fence: i64,
    /// The import taken over had not finished: wait out its writes before deleting stale rows.
    unfinished_predecessor: bool,
    /// When this import raised the guard (`t_F` in the module docs).
    guard_raised_at: tokio::time::Instant,
    /// The day had no record: no import of it ever began, so it has no rows to delete.
    fresh: bool,
    written: u64,
}

impl DayImport {
    /// This import's fence number.
    pub fn fence(&self) -> i64 {
        self.fence
    }

    fn fenced(&self) -> ImportError {
        ImportError::Fenced {
            day: self.day.record_id(),
            fence: self.fence,
        }
    }

    /// One ordered `update` command: the guard check, then `rows` as fenced upserts. Checks the
    /// reply: a duplicate key anywhere means a newer import owns the day (or that row).
    async fn run_update(&self, op: &'static str, rows: Vec<Document>) -> Result<(), ImportError> {
        let fence = self.fence;
        let mut updates = Vec::with_capacity(rows.len() + 1);
        updates.push(doc! {
            "q": {"_id": self.day.guard_id(), "fence": {"$lte": fence}},
            "u": {"$set": {"fence": fence, "kind": "importFence"}},
            "upsert": true,
        });
        for row in rows {
            let id = row.get("_id").cloned().unwrap_or(Bson::Null);
            updates
                .push(doc! {"q": {"_id": id, "fence": {"$lte": fence}}, "u": row, "upsert": true});
        }
        let expected = updates.len() as i64;
        let command = doc! {
            "update": "transactions",
            "updates": updates,
            "ordered": true,
            "maxTimeMS": self.importer.timeouts.write_max_time.as_millis() as i64,
        };
        let reply = self
            .importer
            .bounded(op, self.importer.db.run_command(command))
            .await?;
        if let Some((code, message)) = first_write_error(&reply) {
            if code == DUPLICATE_KEY {
                return Err(self.fenced());
            }
            return Err(ImportError::Write { op, code, message });
        }
        let n = int(&reply, "n").unwrap_or(-1);
        if n != expected {
            return Err(ImportError::Unexpected {
                op,
                detail: format!("{n} of {expected} statements matched or inserted"),
            });
        }
        Ok(())
    }

    /// Writes a batch of the day's transactions and renews the lease.
    ///
    /// # Errors
    ///
    /// [`ImportError::Fenced`] when a newer import began (nothing more is written); MongoDB
    /// errors.
    pub async fn write(&mut self, batch: &[Transaction]) -> Result<(), ImportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = DateTime::now();
        let rows = batch
            .iter()
            .map(|t| {
                let mut d = transaction_document(t, &self.import_id, now)?;
                d.insert("fence", self.fence);
                Ok(d)
            })
            .collect::<Result<Vec<_>, ImportError>>()?;
        self.run_update("writing transactions", rows).await?;
        self.written += batch.len() as u64;
        self.renew().await
    }

    /// Extends the lease; fails when a newer import moved the fence.
    async fn renew(&self) -> Result<(), ImportError> {
        let until = now_ms() + self.importer.timeouts.lease.as_millis() as i64;
        let res = self
            .importer
            .bounded(
                "renewing the import lease",
                self.importer.records().update_one(
                    doc! {"_id": self.day.record_id(), "fence": self.fence},
                    doc! {"$set": {"untilMs": until}},
                ),
            )
            .await?;
        if res.matched_count != 1 {
            return Err(self.fenced());
        }
        Ok(())
    }

    /// Deletes the day's rows of older imports (`fence < F`); returns how many.
    async fn delete_stale(&self) -> Result<u64, ImportError> {
        let mut stale = self.day.filter();
        stale.insert("fence", doc! {"$lt": self.fence});
        let command = doc! {
            "delete": "transactions",
            "deletes": [{"q": stale, "limit": 0}],
            "maxTimeMS": self.importer.timeouts.write_max_time.as_millis() as i64,
        };
        let reply = self
            .importer
            .bounded(
                "deleting rows of older imports",
                self.importer.db.run_command(command),
            )
            .await?;
        if let Some((code, message)) = first_write_error(&reply) {
            return Err(ImportError::Write {
                op: "deleting rows of older imports",
                code,
                message,
            });
        }
        Ok(int(&reply, "n").map_or(0, |n| n.max(0) as u64))
    }

    /// Finishes the import: waits out an unfinished predecessor's writes, deletes the day's
    /// rows of older imports, marks the day `done`.
    ///
    /// # Returns
    ///
    /// `(written, removed)`: rows written by this import, stale rows deleted.
    ///
    /// # Errors
    ///
    /// [`ImportError::Fenced`] when a newer import began; MongoDB errors. The day then stays
    /// `running` and the next import takes it over.
    pub async fn finish(self) -> Result<(u64, u64), ImportError> {
        self.renew().await?;
        if self.unfinished_predecessor {
            let quiet =
                self.guard_raised_at + self.importer.timeouts.write_max_time + MAX_TIME_MARGIN;
            // Renew while waiting, in steps of a third of the lease: a live import keeps its
            // day (else another job could take it over mid-wait, then lose it back in its own
            // wait, and so on), and a takeover is still noticed at the next step.
            let step = self.importer.timeouts.lease / 3;
            if tokio::time::Instant::now() < quiet {
                tracing::debug!(day = %self.day.record_id(), "waiting out the writes of the import taken over");
            }
            while tokio::time::Instant::now() < quiet {
                tokio::time::sleep_until(quiet.min(tokio::time::Instant::now() + step)).await;
                self.renew().await?;
            }
        }
        let removed = if self.fresh {
            0
        } else {
            self.delete_stale().await?
        };
        let res = self
            .importer
            .bounded(
                "marking the day done",
                self.importer.records().update_one(
                    doc! {"_id": self.day.record_id(), "fence": self.fence},
                    doc! {"$set": {
                        "state": "done", "untilMs": 0i64, "finishedAt": DateTime::now(),
                        "rows": self.written as i64, "removed": removed as i64,
                    }},
                ),
            )
            .await?;
        if res.matched_count != 1 {
            return Err(self.fenced());
        }
        Ok((self.written, removed))
    }
}

/// A whole number stored under `key`, whichever BSON width the server chose (nx-27017 answers
/// Int32 where MongoDB keeps the Int64 written; a JavaScript writer may store a double).
/// A `filerecords` document as a [`FileRecord`]; `None` when its name or storage is missing.
fn file_record_from(d: &Document) -> Option<FileRecord> {
    let storage = d.get_document("storage").ok()?;
    let provider = storage.get_str("provider").ok()?.to_string();
    let bucket = storage.get_str("bucket").ok().map(str::to_string);
    let path = match &bucket {
        Some(_) => storage.get_str("key").ok()?,
        None => storage.get_str("path").ok()?,
    }
    .to_string();
    Some(FileRecord {
        filename: d.get_str("filename").ok()?.to_string(),
        file_type: d.get_str("fileType").unwrap_or_default().to_string(),
        provider,
        path,
        bucket,
        size: int(d, "size")
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
        checksum: d.get_str("checksum").unwrap_or_default().to_string(),
    })
}

fn int(d: &Document, key: &str) -> Option<i64> {
    match d.get(key) {
        Some(Bson::Int64(n)) => Some(*n),
        Some(Bson::Int32(n)) => Some(i64::from(*n)),
        Some(Bson::Double(n)) => Some(*n as i64),
        _ => None,
    }
}

/// The code and message of a write command's first write error, if it reported any.
fn first_write_error(reply: &Document) -> Option<(i32, String)> {
    let errors = reply.get_array("writeErrors").ok()?;
    let Some(Bson::Document(first)) = errors.first() else {
        return None;
    };
    let code = int(first, "code").unwrap_or(0) as i32;
    let message = first.get_str("errmsg").unwrap_or_default().to_string();
    Some((code, message))
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
    importer
        .bounded(
            "counting a day's transactions",
            importer.transactions().count_documents(day.filter()),
        )
        .await
}

/// The row keys of a day's stored transactions, sorted (for tests).
///
/// # Errors
///
/// MongoDB errors.
pub async fn day_keys(importer: &Importer, day: &Day) -> Result<Vec<String>, ImportError> {
    let mut cursor = importer
        .bounded(
            "listing a day's transactions",
            importer
                .transactions()
                .find(day.filter())
                .projection(doc! {"_id": 1}),
        )
        .await?;
    let mut keys = Vec::new();
    while let Some(d) = cursor
        .try_next()
        .await
        .map_err(ImportError::mongo("listing a day's transactions"))?
    {
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

    fn running(job: &str, until_ms: i64) -> DayRecord {
        DayRecord {
            fence: 3,
            has_fence: true,
            done: false,
            job: job.into(),
            until_ms,
        }
    }

    #[test]
    fn who_may_take_a_day_over() {
        let now = 1_000_000;
        assert_eq!(decide(None, "j", now), Decision::Fresh);
        let done = DayRecord {
            done: true,
            ..running("other", now + 60_000)
        };
        assert_eq!(
            decide(Some(&done), "j", now),
            Decision::TakeOver { unfinished: false }
        );
        // The same job again: a crash, a hand-back or an outage; at once, whatever the lease.
        assert_eq!(
            decide(Some(&running("j", now + 60_000)), "j", now),
            Decision::TakeOver { unfinished: true }
        );
        // Another job: waits for a live lease, takes over a lapsed one.
        assert_eq!(
            decide(Some(&running("other", now + 60_000)), "j", now),
            Decision::Wait {
                holder: "other".into(),
                until_ms: now + 60_000
            }
        );
        assert_eq!(
            decide(Some(&running("other", now - 1)), "j", now),
            Decision::TakeOver { unfinished: true }
        );
    }

    #[test]
    fn records_of_every_version_are_read() {
        let v1 = doc! {"_id": "B|1|2026-02-09", "state": "running", "untilMs": 5i64, "owner": "w"};
        let r = DayRecord::from_document(&v1);
        assert_eq!(
            (r.fence, r.has_fence, r.done, r.job.as_str(), r.until_ms),
            (0, false, false, "", 5)
        );
        let now = doc! {"fence": 4i32, "state": "done", "job": "9", "untilMs": 0i32};
        let r = DayRecord::from_document(&now);
        assert_eq!(
            (r.fence, r.has_fence, r.done, r.job.as_str()),
            (4, true, true, "9")
        );
    }

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
