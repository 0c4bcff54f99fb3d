//! Raw files in MongoDB GridFS: one GridFS file per export file, in the bucket `rawfiles`
//! (`rawfiles.files` and `rawfiles.chunks`) unless configured otherwise.
//!
//! # Names and ids
//!
//! A file's GridFS `filename` is its [`raw_key`] (`<branch>/<date>/pos<pos>/<file name>`, the
//! same key the local store uses as its relative path), and its `metadata` is
//! `{branch, pos, date, fileType}` (`pos` an int32, `date` `YYYY-MM-DD`, `fileType` the type
//! part of the name such as `rd5000`). Its `_id` is an ObjectId chosen when the upload begins;
//! the committed [`StorageLocation`] is `{provider: "gridfs", path: <that id in hex>}`, so a
//! record points at exactly the bytes that were hashed, whatever happens to the name later.
//!
//! # Atomicity
//!
//! GridFS gives the same guarantee as the local store's temp-and-rename: chunks are written as
//! the download streams in, but the files document, which is what makes a file exist for
//! readers (by name or by id), is inserted only when the upload stream is closed, after the
//! last chunk. A partly uploaded file is therefore never visible as complete. Aborting deletes
//! the chunks written so far; so does dropping the writer (the driver spawns the delete).
//!
//! On abort, on a failed commit and on drop, the writer also deletes any files document that
//! carries its id. Against MongoDB there normally is none, but a commit can fail after the
//! files insert was applied (a reply lost on a standalone server, where writes are not
//! retried), and a server may materialise the document early; either would otherwise leave a
//! file under that id without all of its chunks.
//!
//! What can survive a crash mid-upload is orphan chunks, whose `files_id` has no files
//! document. Readers never see them; a sweep can remove them.
//!
//! # Revisions
//!
//! GridFS allows several files with one name (revisions). After a successful commit the
//! writer deletes the *older* revisions of its name, so a re-download replaces the previous
//! copy as it does on disk. "Older" means an earlier `uploadDate` (taken from the uploading
//! process's clock when the upload is closed), ties broken by the ObjectId: each committer
//! only deletes files that precede its own, so when uploads of one name commit concurrently,
//! the last in that order always survives (of two files, at most one can delete the other).
//! Pruning is best effort: a failure is logged and the commit still succeeds (the new file
//! is complete and named; readers by name get the newest revision, and the next commit of the
//! name prunes again). A location recorded for a replaced revision no longer resolves once
//! the newer one is committed.
//!
//! # Reading
//!
//! The combiner reads local files, so [`GridFsStorage::copy_to_path`] materialises a stored
//! file on disk (atomically, through a temporary name); [`GridFsStorage::read_all`] returns it
//! in memory. The driver checks the chunk sequence and sizes while reading, so a file with a
//! missing or short chunk is an error rather than silently short data.
//!
//! The bucket reads from the primary whatever the database's read preference, so a file
//! is readable right after its commit.
//!
//! # Indexes
//!
//! The driver creates the GridFS indexes only when it writes a full chunk into an empty
//! bucket, which small export files never do. The store therefore creates them itself
//! (`{filename: 1, uploadDate: 1}` on files, unique `{files_id: 1, n: 1}` on chunks) before
//! its first upload; an equivalent existing index is accepted. That is tried once per store
//! (and its clones): a failure, such as a user without the `createIndex` privilege, is logged
//! and does not fail the upload.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::BoxFuture;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use futures_util::stream::TryStreamExt;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{ErrorKind, GridFsErrorKind, WriteFailure};
use mongodb::gridfs::{FilesCollectionDocument, GridFsBucket, GridFsUploadStream};
use mongodb::options::{GridFsBucketOptions, IndexOptions, ReadPreference, SelectionCriteria};
use mongodb::{Database, IndexModel};

use crate::pipeline::export_name::PosFileName;

use super::{RawStorage, RawWriter, StorageError, StorageLocation, raw_key};

/// Command error codes that say the server or the network is (for now) unable to serve, so a
/// later try may succeed: host unreachable/not found, network timeout, shutdown, interrupted,
/// not primary, primary stepped down, exceeded time limit, socket error, max time expired,
/// write conflict, out of disk space.
const TRANSIENT_CODES: &[i32] = &[
    6, 7, 50, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 14031,
];

/// Index option conflicts: an index with these keys (or this name) already exists with other
/// options, which is good enough for lookups.
const INDEX_CONFLICT_CODES: &[i32] = &[85, 86];

/// The read buffer of [`GridFsStorage::copy_to_path`].
const COPY_BUFFER: usize = 64 * 1024;

/// Raw storage in a GridFS bucket. Cheap to clone (handles are shared).
#[derive(Debug, Clone)]
pub struct GridFsStorage {
    /// The bucket name (`rawfiles` by default).
    bucket_name: String,
    /// The driver's bucket, reading from the primary.
    bucket: GridFsBucket,
    /// The database, for creating the bucket's indexes.
    db: Database,
    /// Set once index creation was tried, shared between clones.
    indexed: Arc<AtomicBool>,
}

impl GridFsStorage {
    /// The provider name in [`StorageLocation`].
    pub const PROVIDER: &'static str = "gridfs";

    /// The bucket used when none is configured.
    pub const DEFAULT_BUCKET: &'static str = "rawfiles";

    /// A store in the bucket `bucket` of `db` (`rawfiles` when `None` or empty). Nothing is
    /// sent to the server until the first upload or read.
    pub fn new(db: Database, bucket: Option<String>) -> GridFsStorage {
        let bucket_name = bucket
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| Self::DEFAULT_BUCKET.to_string());
        let options = GridFsBucketOptions::builder()
            .bucket_name(bucket_name.clone())
            .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
            .build();
        GridFsStorage {
            bucket: db.gridfs_bucket(options),
            bucket_name,
            db,
            indexed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The bucket name: the collections are `<name>.files` and `<name>.chunks`.
    pub fn bucket_name(&self) -> &str {
        &self.bucket_name
    }

    /// The driver's bucket, for reads and administration beyond this API.
    pub fn bucket(&self) -> &GridFsBucket {
        &self.bucket
    }

    /// [`RawStorage::begin`] with the concrete writer, whose [`GridFsWriter::id`] is known
    /// before the commit.
    ///
    /// # Errors
    ///
    /// [`StorageError::Provider`] when the upload stream cannot be opened.
    pub async fn begin_upload(&self, name: &PosFileName) -> Result<GridFsWriter, StorageError> {
        self.ensure_indexes_once().await;
        let key = raw_key(name);
        let id = ObjectId::new();
        let metadata = doc! {
            "branch": name.branch().as_str(),
            "pos": i32::from(name.pos().get()),
            "date": name.date().to_string(),
            "fileType": name.file_type(),
        };
        let stream = self
            .bucket
            .open_upload_stream(&key)
            .id(Bson::ObjectId(id))
            .metadata(metadata)
            .await
            .map_err(|e| mongo_error("open upload", &e))?;
        Ok(GridFsWriter {
            storage: self.clone(),
            stream: Some(stream),
            id,
            key,
            finished: false,
        })
    }

    /// Creates the GridFS indexes (see the module docs); an equivalent existing index counts.
    ///
    /// # Errors
    ///
    /// [`StorageError::Provider`] when the server refuses or cannot be reached.
    pub async fn ensure_indexes(&self) -> Result<(), StorageError> {
        let files = self
            .db
            .collection::<Document>(&format!("{}.files", self.bucket_name));
        let chunks = self
            .db
            .collection::<Document>(&format!("{}.chunks", self.bucket_name));
        let by_name = IndexModel::builder()
            .keys(doc! {"filename": 1, "uploadDate": 1})
            .build();
        let by_file = IndexModel::builder()
            .keys(doc! {"files_id": 1, "n": 1})
            .options(IndexOptions::builder().unique(true).build())
            .build();
        for (collection, index) in [(files, by_name), (chunks, by_file)] {
            match collection.create_index(index).await {
                Ok(_) => {}
                Err(e) if command_code(&e).is_some_and(|c| INDEX_CONFLICT_CODES.contains(&c)) => {}
                Err(e) => return Err(mongo_error("create index", &e)),
            }
        }
        Ok(())
    }

    /// The whole content of the file with the id `id_hex` (24 hex digits, as in a
    /// [`StorageLocation::path`]).
    ///
    /// # Errors
    ///
    /// [`StorageError::Provider`]: a malformed id or a missing or damaged file (permanent), or
    /// a server failure.
    pub async fn read_all(&self, id_hex: &str) -> Result<Vec<u8>, StorageError> {
        let id = parse_id(id_hex)?;
        let mut source = self
            .bucket
            .open_download_stream(Bson::ObjectId(id))
            .await
            .map_err(|e| mongo_error("open download", &e))?;
        let mut data = Vec::new();
        source
            .read_to_end(&mut data)
            .await
            .map_err(|e| stream_error("read", &e))?;
        Ok(data)
    }

    /// Writes the file at `location` to `dest` (creating its parent directories), through a
    /// temporary file in the same directory that is renamed into place, so `dest` is either
    /// absent or complete. An existing `dest` is replaced.
    ///
    /// # Returns
    ///
    /// The number of bytes written.
    ///
    /// # Errors
    ///
    /// [`StorageError::Provider`] for a location of another provider, a malformed id, a missing
    /// or damaged file, or a server failure; [`StorageError::Io`] for the local side.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe as far as the disk goes: a cancelled or failed copy removes its temporary
    /// file (`.part-<uuid>` next to `dest`), and `dest` is never partial.
    pub async fn copy_to_path(
        &self,
        location: &StorageLocation,
        dest: &Path,
    ) -> Result<u64, StorageError> {
        location.expect_provider(Self::PROVIDER)?;
        let id = parse_id(&location.path)?;
        let mut source = self
            .bucket
            .open_download_stream(Bson::ObjectId(id))
            .await
            .map_err(|e| mongo_error("open download", &e))?;
        let (part, mut file) = super::part_file::PartFile::beside(dest).await?;
        let mut buffer = vec![0u8; COPY_BUFFER];
        let mut total: u64 = 0;
        loop {
            let n = source
                .read(&mut buffer)
                .await
                .map_err(|e| stream_error("read", &e))?;
            if n == 0 {
                break;
            }
            part.write(&mut file, &buffer[..n]).await?;
            total += n as u64;
        }
        part.persist(file, dest).await?;
        Ok(total)
    }

    /// Creates the indexes unless this store tried already; a failure is only logged (an
    /// upload does not need them).
    async fn ensure_indexes_once(&self) {
        if self.indexed.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.ensure_indexes().await {
            tracing::warn!(bucket = %self.bucket_name, error.message = %e, "creating the GridFS indexes failed");
        }
    }

    /// Deletes the files document with this id, and its chunks, if there is one. Chunks of an
    /// upload that never got a files document are the upload stream's to delete.
    async fn discard(&self, id: ObjectId) -> Result<(), StorageError> {
        let id = Bson::ObjectId(id);
        let found = self
            .bucket
            .find_one(doc! {"_id": &id})
            .await
            .map_err(|e| mongo_error("find", &e))?;
        if found.is_none() {
            return Ok(());
        }
        match self.bucket.delete(id).await {
            Ok(()) => Ok(()),
            Err(e) if is_file_not_found(&e) => Ok(()),
            Err(e) => Err(mongo_error("delete", &e)),
        }
    }

    /// Deletes the revisions of `key` older than the just committed `id` (see the module
    /// docs). Best effort: failures are logged.
    async fn prune_older(&self, key: &str, id: ObjectId) {
        let revisions: Vec<FilesCollectionDocument> = match self
            .bucket
            .find(doc! {"filename": key})
            .await
        {
            Ok(cursor) => match cursor.try_collect().await {
                Ok(files) => files,
                Err(e) => {
                    tracing::warn!(key, error.message = %e.kind, "listing older GridFS revisions failed");
                    return;
                }
            },
            Err(e) => {
                tracing::warn!(key, error.message = %e.kind, "listing older GridFS revisions failed");
                return;
            }
        };
        let own = Bson::ObjectId(id);
        let Some(committed) = revisions.iter().find(|f| f.id == own) else {
            tracing::warn!(key, id = %id, "the committed GridFS file is not listed under its name; older revisions kept");
            return;
        };
        for older in revisions
            .iter()
            .filter(|f| precedes(f, committed.upload_date, id))
        {
            match self.bucket.delete(older.id.clone()).await {
                Ok(()) => tracing::debug!(key, id = %older.id, "deleted an older GridFS revision"),
                Err(e) if is_file_not_found(&e) => {}
                Err(e) => {
                    tracing::warn!(key, id = %older.id, error.message = %e.kind, "deleting an older GridFS revision failed");
                }
            }
        }
    }
}

/// True when `file` was committed before the file `(uploaded, id)`: an earlier upload date,
/// or the same one and a smaller ObjectId. Files with ids of another type are only ordered
/// by date.
fn precedes(
    file: &FilesCollectionDocument,
    uploaded: mongodb::bson::DateTime,
    id: ObjectId,
) -> bool {
    if file.upload_date != uploaded {
        return file.upload_date < uploaded;
    }
    matches!(file.id, Bson::ObjectId(other) if other < id)
}

impl RawStorage for GridFsStorage {
    fn provider(&self) -> &'static str {
        Self::PROVIDER
    }

    fn begin<'a>(
        &'a self,
        name: &'a PosFileName,
    ) -> BoxFuture<'a, Result<Box<dyn RawWriter>, StorageError>> {
        Box::pin(async move {
            let writer: Box<dyn RawWriter> = Box::new(self.begin_upload(name).await?);
            Ok(writer)
        })
    }
}

/// One GridFS upload in progress: a [`RawWriter`] (see the module docs for what commit, abort
/// and drop do).
pub struct GridFsWriter {
    /// The store, for clean-up and pruning.
    storage: GridFsStorage,
    /// The upload stream; `None` once closed or aborted.
    stream: Option<GridFsUploadStream>,
    /// The file's id.
    id: ObjectId,
    /// The file's name.
    key: String,
    /// Set once committed or aborted, so `Drop` leaves the outcome alone.
    finished: bool,
}

impl GridFsWriter {
    /// The id the file gets (and the chunks written so far carry).
    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// The file name, its [`raw_key`].
    pub fn key(&self) -> &str {
        &self.key
    }

    // `finished` is set only once the outcome is settled: a commit or abort future dropped
    // half-way leaves the clean-up to `Drop`.
    async fn finish_commit(mut self: Box<Self>) -> Result<StorageLocation, StorageError> {
        let Some(mut stream) = self.stream.take() else {
            self.finished = true;
            return Err(provider_error(
                format!("{}: the upload was already closed", self.key),
                false,
            ));
        };
        let closed = stream.close().await;
        drop(stream);
        if let Err(e) = closed {
            // The driver has deleted the chunks; a files document may still have been written.
            let err = stream_error("close", &e);
            if let Err(cleanup) = self.storage.discard(self.id).await {
                tracing::warn!(key = %self.key, id = %self.id, error.message = %cleanup, "discarding a failed GridFS upload failed");
            }
            self.finished = true;
            return Err(err);
        }
        self.finished = true;
        self.storage.prune_older(&self.key, self.id).await;
        Ok(StorageLocation {
            provider: GridFsStorage::PROVIDER.to_string(),
            path: self.id.to_hex(),
            bucket: None,
        })
    }

    async fn finish_abort(mut self: Box<Self>) -> Result<(), StorageError> {
        if let Some(mut stream) = self.stream.take() {
            // Deletes the chunks. A stream the driver closed after a failed write says so
            // here; its chunks were deleted then. `discard` below has the last word.
            if let Err(e) = stream.abort().await {
                tracing::debug!(key = %self.key, error.message = %e.kind, "aborting the GridFS upload stream failed");
            }
        }
        let result = self.storage.discard(self.id).await;
        self.finished = true;
        result
    }
}

impl RawWriter for GridFsWriter {
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let Some(stream) = self.stream.as_mut() else {
                return Err(provider_error(
                    format!("{}: the upload was already closed", self.key),
                    false,
                ));
            };
            stream
                .write_all(chunk)
                .await
                .map_err(|e| stream_error("write", &e))
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<StorageLocation, StorageError>> {
        Box::pin(self.finish_commit())
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(self.finish_abort())
    }
}

impl Drop for GridFsWriter {
    /// A writer dropped without commit or abort (a cancelled download), or whose commit or
    /// abort was cancelled before it settled: dropping the upload stream makes the driver
    /// delete its chunks in the background, and a task (when a Tokio runtime is at hand)
    /// deletes any files document with this id. Errors are ignored.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        drop(self.stream.take());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let storage = self.storage.clone();
            let id = self.id;
            runtime.spawn(async move {
                let _ = storage.discard(id).await;
            });
        }
    }
}

/// Parses a file id as recorded in a location.
fn parse_id(id_hex: &str) -> Result<ObjectId, StorageError> {
    ObjectId::parse_str(id_hex).map_err(|_| {
        provider_error(
            format!("{id_hex:?} is not a GridFS file id (24 hex digits)"),
            false,
        )
    })
}

fn provider_error(message: String, transient: bool) -> StorageError {
    StorageError::Provider {
        provider: GridFsStorage::PROVIDER,
        message,
        transient,
    }
}

/// A driver error as a [`StorageError`], with what was being done.
fn mongo_error(op: &str, e: &mongodb::error::Error) -> StorageError {
    provider_error(format!("{op}: {}", e.kind), is_transient(e))
}

/// An error of the upload or download stream: the driver wraps its own error in an
/// `io::Error`, which is unwrapped when possible.
fn stream_error(op: &str, e: &std::io::Error) -> StorageError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<mongodb::error::Error>())
    {
        Some(inner) => mongo_error(op, inner),
        None => provider_error(format!("{op}: {e}"), true),
    }
}

fn command_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        _ => None,
    }
}

fn is_file_not_found(e: &mongodb::error::Error) -> bool {
    matches!(
        e.kind.as_ref(),
        ErrorKind::GridFs(GridFsErrorKind::FileNotFound { .. })
    )
}

/// Whether trying again may help: network and server-selection trouble, errors the server
/// labels retryable, write concern failures and the [`TRANSIENT_CODES`]; not bad arguments,
/// authentication, malformed data, missing or damaged files, or other command and write
/// errors.
fn is_transient(e: &mongodb::error::Error) -> bool {
    if e.contains_label("RetryableWriteError") || e.contains_label("TransientTransactionError") {
        return true;
    }
    match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::DnsResolve { .. } => true,
        ErrorKind::Command(c) => TRANSIENT_CODES.contains(&c.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => true,
        ErrorKind::Write(WriteFailure::WriteError(w)) => TRANSIENT_CODES.contains(&w.code),
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .is_none_or(|errs| errs.iter().all(|w| TRANSIENT_CODES.contains(&w.code))),
        // The clean-up after a failed write failed too: the server is likely unreachable.
        ErrorKind::GridFs(GridFsErrorKind::AbortError { .. }) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: Bson, millis: i64) -> FilesCollectionDocument {
        mongodb::bson::from_document(doc! {
            "_id": id,
            "length": 0_i64,
            "chunkSize": 1024,
            "uploadDate": mongodb::bson::DateTime::from_millis(millis),
            "filename": "x",
        })
        .expect("files document")
    }

    #[test]
    fn revisions_are_ordered_by_upload_date_then_id() {
        let a = ObjectId::parse_str("000000000000000000000001").expect("id");
        let b = ObjectId::parse_str("000000000000000000000002").expect("id");
        let at = mongodb::bson::DateTime::from_millis(1000);
        assert!(precedes(&file(Bson::ObjectId(b), 999), at, a));
        assert!(!precedes(&file(Bson::ObjectId(a), 1001), at, b));
        assert!(precedes(&file(Bson::ObjectId(a), 1000), at, b));
        assert!(!precedes(&file(Bson::ObjectId(b), 1000), at, a));
        assert!(!precedes(&file(Bson::ObjectId(a), 1000), at, a));
        assert!(!precedes(&file(Bson::String("s".into()), 1000), at, a));
        assert!(precedes(&file(Bson::String("s".into()), 1), at, a));
    }

    #[test]
    fn ids_must_be_object_ids() {
        assert!(parse_id("65f0c0ffee0000000000abcd").is_ok());
        for bad in ["", "xyz", "65f0c0ffee0000000000abc", "../../etc/passwd"] {
            let err = parse_id(bad).expect_err(bad);
            assert!(!err.is_transient());
        }
    }

    #[test]
    fn network_trouble_is_transient_and_bad_input_is_not() {
        let io =
            mongodb::error::Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(mongo_error("write", &io).is_transient());
        let closed =
            mongodb::error::Error::from(ErrorKind::GridFs(GridFsErrorKind::UploadStreamClosed));
        assert!(!mongo_error("write", &closed).is_transient());
        let wrapped = std::io::Error::other(io);
        assert!(stream_error("write", &wrapped).is_transient());
    }

    #[tokio::test]
    async fn a_location_of_another_provider_is_refused_before_any_io() {
        let client =
            mongodb::Client::with_uri_str("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100")
                .await
                .expect("client");
        let store = GridFsStorage::new(client.database("x"), None);
        assert_eq!(store.bucket_name(), "rawfiles");
        assert_eq!(store.provider(), "gridfs");
        let local = StorageLocation {
            provider: "local".into(),
            path: "/tmp/x".into(),
            bucket: None,
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = store
            .copy_to_path(&local, &tmp.path().join("x"))
            .await
            .expect_err("refused");
        assert!(!err.is_transient());
        assert!(err.to_string().contains("local"), "{err}");
    }
}
