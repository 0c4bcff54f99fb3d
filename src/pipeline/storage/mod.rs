//! Raw storage: where downloaded export files are kept, byte for byte, before they are combined.
//!
//! The fetcher streams a download into a [`RawWriter`] and only then decides whether it is
//! good (size, length, checksum), so the trait is shaped as **begin → write chunks →
//! commit or abort**: nothing is visible under the final name until [`RawWriter::commit`], and
//! [`RawWriter::abort`] (or dropping the writer) leaves nothing behind. [`LocalStorage`] does
//! this with a temporary file and a rename, [`GridFsStorage`] with a GridFS upload stream whose
//! files document is written only when it is closed. The trait uses boxed futures so it stays
//! object-safe: the fetcher takes a `&dyn RawStorage` and does not care which one it has.
//!
//! A file is keyed by its validated [`PosFileName`] alone. Branch, POS and date come from the
//! name, which the fetcher has already checked against the requested day, so no text from the
//! server other than a validated name reaches a storage path. The key is
//! [`raw_key`]: `<branch>/<date>/pos<pos>/<file name>`.

pub mod gridfs;
mod local;
mod part_file;
pub mod readback;
pub mod s3;

use std::io;
use std::path::PathBuf;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::pipeline::export_name::PosFileName;

pub use gridfs::GridFsStorage;
pub use local::LocalStorage;
pub use readback::Stores;
pub use s3::{S3Settings, S3Storage};

/// Where a committed raw file is, in the shape the app's `FileRecord.storage` has
/// (`{type, path}`; here `provider` is that `type`). An S3 location is recorded as
/// `{provider: "s3", bucket, key}`, its key being [`StorageLocation::path`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageLocation {
    /// `local` (a file path), `gridfs` (a file id) or `s3` (an object key in a bucket).
    pub provider: String,
    /// For `local`, the absolute file path; for `gridfs`, the file's ObjectId in hex; for
    /// `s3`, the object key.
    pub path: String,
    /// For `s3`, the bucket; `None` for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
}

impl StorageLocation {
    /// Refuses a location another provider wrote: `provider` reads only its own.
    ///
    /// # Errors
    ///
    /// A permanent [`StorageError::Provider`] naming both providers.
    pub fn expect_provider(&self, provider: &'static str) -> Result<(), StorageError> {
        if self.provider == provider {
            return Ok(());
        }
        Err(StorageError::Provider {
            provider,
            message: format!(
                "{} is a {} location, not a {provider} one",
                self.path, self.provider
            ),
            transient: false,
        })
    }
}

/// The key of a raw file within any store: `<branch>/<date>/pos<pos>/<file name>`, all parts
/// validated (no `/` or `..` inside a part).
pub fn raw_key(name: &PosFileName) -> String {
    format!(
        "{}/{}/pos{}/{}",
        name.branch(),
        name.date(),
        name.pos(),
        name.as_str()
    )
}

/// A store of raw files.
pub trait RawStorage: Send + Sync {
    /// The provider name recorded in [`StorageLocation::provider`].
    fn provider(&self) -> &'static str;

    /// Starts writing the file `name`. An existing file of that name stays readable until the
    /// new one is committed, and is then replaced.
    ///
    /// # Errors
    ///
    /// [`StorageError`] when the store cannot start the write.
    fn begin<'a>(
        &'a self,
        name: &'a PosFileName,
    ) -> BoxFuture<'a, Result<Box<dyn RawWriter>, StorageError>>;
}

/// One file being written. Dropping it without [`RawWriter::commit`] must discard the data
/// (best effort, without blocking for long), so a cancelled download leaves nothing behind.
pub trait RawWriter: Send {
    /// Appends a chunk.
    ///
    /// # Errors
    ///
    /// [`StorageError`]; the writer should then be aborted.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a chunk may be partly written. Abort (or drop) the writer after a
    /// cancelled write.
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Makes the file durable and visible under its final name.
    ///
    /// # Errors
    ///
    /// [`StorageError`]; the data is then discarded.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<StorageLocation, StorageError>>;

    /// Discards everything written.
    ///
    /// # Errors
    ///
    /// [`StorageError`] when the clean-up itself failed.
    fn abort(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>>;
}

/// A failure of raw storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`create`, `write`, `rename`…).
        op: &'static str,
        /// The path it was done on.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The local root is not valid UTF-8, so its paths cannot be recorded as text.
    #[error("storage root {root:?} is not valid UTF-8")]
    NonUtf8Root {
        /// The root as resolved (absolute, links followed).
        root: PathBuf,
    },
    /// A stored file's bytes no longer hash to the SHA-256 recorded when it was downloaded.
    #[error("{file}: stored bytes have sha256 {actual}, the record says {expected}")]
    Checksum {
        /// The file name.
        file: String,
        /// The recorded SHA-256.
        expected: String,
        /// The SHA-256 of what is stored now.
        actual: String,
    },
    /// A failure of another provider (for implementations outside this module).
    #[error("{provider}: {message}")]
    Provider {
        /// The provider name.
        provider: &'static str,
        /// What went wrong, in the provider's words.
        message: String,
        /// Whether trying again may succeed.
        transient: bool,
    },
}

impl StorageError {
    /// True when trying again may succeed (a full disk can be cleaned, a server can come
    /// back); false for permissions, a read-only or wrong kind of path, and a bad root.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => !matches!(
                source.kind(),
                io::ErrorKind::PermissionDenied
                    | io::ErrorKind::ReadOnlyFilesystem
                    | io::ErrorKind::NotADirectory
                    | io::ErrorKind::IsADirectory
                    | io::ErrorKind::InvalidInput
                    | io::ErrorKind::InvalidFilename
            ),
            StorageError::NonUtf8Root { .. } | StorageError::Checksum { .. } => false,
            StorageError::Provider { transient, .. } => *transient,
        }
    }

    /// Wraps an I/O error with what was being done and where.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_branch_date_pos_name() {
        let name = PosFileName::parse("a_AYALA-FRN_2_rd5000_2026-02-09_19-59_.csv").expect("name");
        assert_eq!(
            raw_key(&name),
            "AYALA-FRN/2026-02-09/pos2/a_AYALA-FRN_2_rd5000_2026-02-09_19-59_.csv"
        );
    }

    #[test]
    fn permission_errors_are_permanent_and_full_disks_transient() {
        let err = |kind| StorageError::io("write", "/x", io::Error::from(kind));
        assert!(!err(io::ErrorKind::PermissionDenied).is_transient());
        assert!(err(io::ErrorKind::StorageFull).is_transient());
        assert!(err(io::ErrorKind::Interrupted).is_transient());
    }
}
