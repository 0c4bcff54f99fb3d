//! Stored files as local paths: the combine pass reads files, while raw storage may be a
//! directory, GridFS or S3. The trait is the handler's seam, so tests can hand it any store.

use std::path::PathBuf;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::pipeline::fetch::StoredFile;
use crate::pipeline::storage::{StorageError, Stores};

/// Turns raw storage locations into local paths the combine pass can read.
pub trait Materialize: Send + Sync {
    /// A local path holding `file`'s bytes (the stored path itself for local storage; a copy in
    /// `scratch` for remote stores). With `verify`, the bytes must hash to `file.sha256`: a
    /// reprocess reads files stored long ago, while a fetch hashed them as it stored them.
    ///
    /// # Errors
    ///
    /// [`StorageError`]; its transience decides whether the job is retried.
    fn local_path<'a>(
        &'a self,
        file: &'a StoredFile,
        scratch: &'a std::path::Path,
        verify: bool,
    ) -> BoxFuture<'a, Result<PathBuf, StorageError>>;
}

/// Any provider a location names (local, GridFS, S3): what the configured pipeline uses, so a
/// reprocess reads days stored by any worker.
impl Materialize for Stores {
    fn local_path<'a>(
        &'a self,
        file: &'a StoredFile,
        scratch: &'a std::path::Path,
        verify: bool,
    ) -> BoxFuture<'a, Result<PathBuf, StorageError>> {
        let sha = Some(file.sha256.as_str()).filter(|s| verify && !s.is_empty());
        Stores::local_path(self, &file.location, &file.file_name, sha, scratch).boxed()
    }
}
