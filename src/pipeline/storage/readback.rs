//! Reading stored raw files back as local files, whichever provider stored them: what the
//! combine pass needs after a download, and what a reprocess needs for files stored days ago,
//! maybe by a worker with another `STORAGE`.
//!
//! A location names its provider, so one [`Stores`] serves them all: `local` paths are used in
//! place (only below the local root, so a record cannot point the combiner at any file of the
//! host), `gridfs` files and `s3` objects are copied into the job's scratch directory under
//! their file name. Every file is then hashed and compared with the SHA-256 recorded when it
//! was downloaded, so a reprocess never imports bytes other than those that were fetched.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{GridFsStorage, LocalStorage, S3Storage, StorageError, StorageLocation};

/// The read buffer when hashing a file.
const HASH_BUFFER: usize = 64 * 1024;

/// Every store a location may name. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Stores {
    /// The local root (canonical): `local` locations must lie below it. `None`: local
    /// locations are refused.
    pub local_root: Option<PathBuf>,
    /// GridFS in the app's database (always at hand where MongoDB is).
    pub gridfs: Option<GridFsStorage>,
    /// The S3 bucket, when `STORAGE=s3` (or S3 is otherwise configured).
    pub s3: Option<S3Storage>,
}

impl Stores {
    /// Reads local files below `root` (resolved now; a root that does not exist yet has no
    /// files to read, so local locations are then refused).
    pub fn with_local_root(mut self, root: &Path) -> Stores {
        self.local_root = root.canonicalize().ok();
        self
    }

    /// Reads local files below the root of `local`.
    pub fn with_local(mut self, local: &LocalStorage) -> Stores {
        self.local_root = Some(local.root().to_path_buf());
        self
    }

    /// Reads GridFS files through `gridfs`.
    pub fn with_gridfs(mut self, gridfs: GridFsStorage) -> Stores {
        self.gridfs = Some(gridfs);
        self
    }

    /// Reads S3 objects through `s3`.
    pub fn with_s3(mut self, s3: S3Storage) -> Stores {
        self.s3 = Some(s3);
        self
    }

    /// A local path holding the bytes at `location`, for the file `file_name`: the stored
    /// path itself for `local`, a copy in `scratch` otherwise. When `sha256` is given, the
    /// file's hash must match it.
    ///
    /// # Errors
    ///
    /// [`StorageError::Provider`] (permanent) for a provider this worker cannot read, a local
    /// path outside the root or a file name with a path in it; [`StorageError::Checksum`] for
    /// changed bytes; the provider's own errors (a missing file is permanent, a service
    /// failure transient).
    pub async fn local_path(
        &self,
        location: &StorageLocation,
        file_name: &str,
        sha256: Option<&str>,
        scratch: &Path,
    ) -> Result<PathBuf, StorageError> {
        let path = match location.provider.as_str() {
            LocalStorage::PROVIDER => self.local_file(location)?,
            GridFsStorage::PROVIDER | S3Storage::PROVIDER => {
                let dest = scratch.join(plain_name(file_name)?);
                match (location.provider.as_str(), &self.gridfs, &self.s3) {
                    (GridFsStorage::PROVIDER, Some(gridfs), _) => {
                        gridfs.copy_to_path(location, &dest).await?;
                    }
                    (S3Storage::PROVIDER, _, Some(s3)) => {
                        s3.copy_to_path(location, &dest).await?;
                    }
                    (provider, _, _) => {
                        return Err(refused(format!(
                            "{file_name} is stored in {provider}, which this worker is not configured to read"
                        )));
                    }
                }
                dest
            }
            other => {
                return Err(refused(format!(
                    "{file_name} is stored in an unknown provider {other:?}"
                )));
            }
        };
        if let Some(expected) = sha256 {
            let actual = sha256_file(&path).await?;
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(StorageError::Checksum {
                    file: file_name.to_string(),
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        Ok(path)
    }

    /// A `local` location's path, if it lies below the root.
    fn local_file(&self, location: &StorageLocation) -> Result<PathBuf, StorageError> {
        let Some(root) = &self.local_root else {
            return Err(refused(format!(
                "{} is a local file, and this worker has no local raw storage (RAW_STORAGE_PATH)",
                location.path
            )));
        };
        let path = PathBuf::from(&location.path);
        let resolved = path
            .canonicalize()
            .map_err(|e| StorageError::io("open", &path, e))?;
        if !resolved.starts_with(root) {
            return Err(refused(format!(
                "{} is outside the local raw storage {} (RAW_STORAGE_PATH)",
                location.path,
                root.display()
            )));
        }
        Ok(resolved)
    }
}

/// `name` if it is a bare file name (no directory part, not `.` or `..`).
fn plain_name(name: &str) -> Result<&str, StorageError> {
    let ok = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if ok {
        Ok(name)
    } else {
        Err(refused(format!("{name:?} is not a plain file name")))
    }
}

fn refused(message: String) -> StorageError {
    StorageError::Provider {
        provider: "storage",
        message,
        transient: false,
    }
}

/// The lower-case hex SHA-256 of a file, read in pieces.
///
/// # Errors
///
/// [`StorageError::Io`].
pub async fn sha256_file(path: &Path) -> Result<String, StorageError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| StorageError::io("open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; HASH_BUFFER];
    loop {
        let n = file
            .read(&mut buffer)
            .await
            .map_err(|e| StorageError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::export_name::PosFileName;
    use crate::pipeline::storage::RawStorage;

    const NAME: &str = "a_BMC_1_rd5000_2026-02-09_20-00_.csv";
    const HELLO_SHA: &str = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

    async fn stored(store: &LocalStorage) -> StorageLocation {
        let name = PosFileName::parse(NAME).unwrap();
        let mut w = store.begin(&name).await.unwrap();
        w.write(b"hello world").await.unwrap();
        w.commit().await.unwrap()
    }

    #[tokio::test]
    async fn local_files_are_read_in_place_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStorage::new(tmp.path().join("raw")).unwrap();
        let location = stored(&store).await;
        let stores = Stores::default().with_local(&store);
        let scratch = tmp.path().join("scratch");
        let path = stores
            .local_path(&location, NAME, Some(HELLO_SHA), &scratch)
            .await
            .unwrap();
        assert_eq!(path, store.path_of(&PosFileName::parse(NAME).unwrap()));
        assert!(!scratch.exists(), "a local file is not copied");

        let err = stores
            .local_path(&location, NAME, Some(&"0".repeat(64)), &scratch)
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Checksum { .. }), "{err}");
        assert!(!err.is_transient());
    }

    #[tokio::test]
    async fn paths_outside_the_root_and_unknown_providers_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStorage::new(tmp.path().join("raw")).unwrap();
        std::fs::write(tmp.path().join("secret"), b"x").unwrap();
        let stores = Stores::default().with_local(&store);
        let outside = StorageLocation {
            provider: "local".into(),
            path: format!("{}/raw/../secret", tmp.path().display()),
            bucket: None,
        };
        let err = stores
            .local_path(&outside, NAME, None, tmp.path())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        assert!(!err.is_transient());

        for provider in ["s3", "gridfs", "ftp"] {
            let location = StorageLocation {
                provider: provider.into(),
                path: "k".into(),
                bucket: Some("b".into()),
            };
            let err = stores
                .local_path(&location, NAME, None, tmp.path())
                .await
                .unwrap_err();
            assert!(!err.is_transient(), "{provider}: {err}");
            assert!(err.to_string().contains(provider), "{err}");
        }
        let err = Stores::default()
            .local_path(&stored(&store).await, NAME, None, tmp.path())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("RAW_STORAGE_PATH"), "{err}");
    }

    #[test]
    fn only_plain_file_names_are_copied_into_scratch() {
        assert!(plain_name(NAME).is_ok());
        for bad in ["", ".", "..", "a/b", "..\\x", "x\0"] {
            assert!(plain_name(bad).is_err(), "{bad:?}");
        }
    }
}
