//! Raw files on the local disk: `<root>/<branch>/<date>/pos<pos>/<file name>`.
//!
//! One directory per (branch, date, pos) holds exactly that day's export files under their
//! listed names, which is the directory layout the combiner reads.
//!
//! Writes are atomic: bytes go to a temporary file in the target directory (so the rename
//! cannot cross file systems), which is flushed and fsynced, renamed over the final name, and
//! the directory is then fsynced (best effort) so the rename survives a crash. Readers see the
//! old file or the new one, never a part. The temporary name is `.part-<uuid>`: it starts with
//! `.` and has no `_`, so neither the legacy name rules nor ours mistake it for an export file
//! if a crash leaves it behind.

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use tokio::io::AsyncWriteExt;

use crate::pipeline::day::{Branch, BusinessDate, PosNo};
use crate::pipeline::export_name::PosFileName;

use super::{RawStorage, RawWriter, StorageError, StorageLocation};

/// Raw storage in a local directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    /// The absolute, canonical root: every path handed out starts with it.
    root: PathBuf,
}

impl LocalStorage {
    /// The provider name in [`StorageLocation`].
    pub const PROVIDER: &'static str = "local";

    /// Opens (creating it when missing) the directory `root`.
    ///
    /// # Errors
    ///
    /// [`StorageError::Io`] when it cannot be created or resolved,
    /// [`StorageError::NonUtf8Root`] when its absolute path is not UTF-8.
    pub fn new(root: impl AsRef<Path>) -> Result<LocalStorage, StorageError> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| StorageError::io("create", root, e))?;
        let root = root
            .canonicalize()
            .map_err(|e| StorageError::io("resolve", root, e))?;
        if root.to_str().is_none() {
            return Err(StorageError::NonUtf8Root { root });
        }
        Ok(LocalStorage { root })
    }

    /// The absolute root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory holding one (branch, date, pos)'s files: what the combiner reads.
    pub fn day_dir(&self, branch: &Branch, date: BusinessDate, pos: PosNo) -> PathBuf {
        self.root
            .join(branch.as_str())
            .join(date.to_string())
            .join(format!("pos{pos}"))
    }

    /// Where the file `name` is stored once committed.
    pub fn path_of(&self, name: &PosFileName) -> PathBuf {
        self.day_dir(name.branch(), name.date(), name.pos())
            .join(name.as_str())
    }
}

impl RawStorage for LocalStorage {
    fn provider(&self) -> &'static str {
        Self::PROVIDER
    }

    fn begin<'a>(
        &'a self,
        name: &'a PosFileName,
    ) -> BoxFuture<'a, Result<Box<dyn RawWriter>, StorageError>> {
        Box::pin(async move {
            let target = self.path_of(name);
            let dir = self.day_dir(name.branch(), name.date(), name.pos());
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| StorageError::io("create", &dir, e))?;
            let temp = dir.join(format!(".part-{}", uuid::Uuid::new_v4().simple()));
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
                .await
                .map_err(|e| StorageError::io("create", &temp, e))?;
            let writer: Box<dyn RawWriter> = Box::new(LocalWriter {
                file: Some(file),
                temp,
                target,
                dir,
                finished: false,
            });
            Ok(writer)
        })
    }
}

/// One file being written to a temporary path.
struct LocalWriter {
    /// The open temporary file; `None` once closed.
    file: Option<tokio::fs::File>,
    /// The temporary path, removed on abort and on drop unless committed.
    temp: PathBuf,
    /// The final path.
    target: PathBuf,
    /// The directory of both, fsynced after the rename.
    dir: PathBuf,
    /// Set once committed or aborted, so `Drop` leaves the outcome alone.
    finished: bool,
}

impl LocalWriter {
    async fn finish_commit(mut self) -> Result<StorageLocation, StorageError> {
        let result = self.persist().await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&self.temp).await;
        }
        self.finished = true;
        result
    }

    async fn persist(&mut self) -> Result<StorageLocation, StorageError> {
        if let Some(mut file) = self.file.take() {
            file.flush()
                .await
                .map_err(|e| StorageError::io("flush", &self.temp, e))?;
            file.sync_all()
                .await
                .map_err(|e| StorageError::io("fsync", &self.temp, e))?;
        }
        tokio::fs::rename(&self.temp, &self.target)
            .await
            .map_err(|e| StorageError::io("rename", &self.target, e))?;
        sync_dir(&self.dir).await;
        let path = self
            .target
            .to_str()
            .ok_or_else(|| StorageError::NonUtf8Root {
                root: self.target.clone(),
            })?
            .to_string();
        Ok(StorageLocation {
            provider: LocalStorage::PROVIDER.to_string(),
            path,
            bucket: None,
        })
    }
}

/// Fsyncs a directory so a rename in it is durable. Best effort: some file systems refuse to
/// fsync directories, and the data itself is already synced.
async fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    {
        match tokio::fs::File::open(dir).await {
            Ok(d) => {
                if let Err(e) = d.sync_all().await {
                    tracing::debug!(dir = %dir.display(), error = %e, "directory fsync failed");
                }
            }
            Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "directory open failed"),
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

impl RawWriter for LocalWriter {
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let Some(file) = self.file.as_mut() else {
                return Err(StorageError::io(
                    "write",
                    &self.temp,
                    std::io::Error::other("writer already closed"),
                ));
            };
            file.write_all(chunk)
                .await
                .map_err(|e| StorageError::io("write", &self.temp, e))
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<StorageLocation, StorageError>> {
        Box::pin((*self).finish_commit())
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            self.finished = true;
            drop(self.file.take());
            match tokio::fs::remove_file(&self.temp).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StorageError::io("remove", &self.temp, e)),
            }
        })
    }
}

impl Drop for LocalWriter {
    /// Removes the temporary file of a writer that was neither committed nor aborted (a
    /// cancelled download). A small synchronous unlink; errors are ignored.
    fn drop(&mut self) {
        if !self.finished {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> PosFileName {
        PosFileName::parse("a_BETA_1_rd5000_2026-02-09_20-00_.csv").expect("name")
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_committed_file_appears_under_its_final_name_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStorage::new(tmp.path().join("raw")).expect("store");
        let mut w = store.begin(&name()).await.expect("begin");
        w.write(b"hello ").await.expect("write");
        w.write(b"world").await.expect("write");
        let dir = store.day_dir(name().branch(), name().date(), name().pos());
        assert_eq!(entries(&dir).len(), 1);
        assert!(entries(&dir)[0].starts_with(".part-"));
        let loc = w.commit().await.expect("commit");
        assert_eq!(loc.provider, "local");
        let path = store.path_of(&name());
        assert_eq!(loc.path, path.to_str().expect("utf-8"));
        assert!(path.starts_with(store.root()));
        assert!(path.ends_with("BETA/2026-02-09/pos1/a_BETA_1_rd5000_2026-02-09_20-00_.csv"));
        assert_eq!(std::fs::read(&path).expect("read"), b"hello world");
        assert_eq!(entries(&dir), [name().as_str()]);
    }

    #[tokio::test]
    async fn abort_and_drop_leave_nothing_and_keep_the_previous_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStorage::new(tmp.path()).expect("store");
        let mut w = store.begin(&name()).await.expect("begin");
        w.write(b"old").await.expect("write");
        w.commit().await.expect("commit");

        let mut w = store.begin(&name()).await.expect("begin");
        w.write(b"partial").await.expect("write");
        w.abort().await.expect("abort");

        let mut w = store.begin(&name()).await.expect("begin");
        w.write(b"partial").await.expect("write");
        drop(w);

        let dir = store.day_dir(name().branch(), name().date(), name().pos());
        assert_eq!(entries(&dir), [name().as_str()]);
        assert_eq!(std::fs::read(store.path_of(&name())).expect("read"), b"old");
    }

    #[tokio::test]
    async fn a_new_commit_replaces_the_old_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStorage::new(tmp.path()).expect("store");
        for content in [&b"first"[..], b"second"] {
            let mut w = store.begin(&name()).await.expect("begin");
            w.write(content).await.expect("write");
            w.commit().await.expect("commit");
        }
        assert_eq!(
            std::fs::read(store.path_of(&name())).expect("read"),
            b"second"
        );
    }
}
