//! A `.part-<uuid>` file beside a destination, renamed into place once complete: the copies
//! that GridFS and S3 make for the combine pass never leave a partial file under the real name.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::StorageError;

/// The partial file; removed when dropped before [`PartFile::persist`] (a failed or
/// cancelled copy).
pub(crate) struct PartFile {
    path: PathBuf,
    kept: bool,
}

impl PartFile {
    /// Creates the destination's folder and a new, empty part file in it.
    pub(crate) async fn beside(dest: &Path) -> Result<(PartFile, tokio::fs::File), StorageError> {
        let dir = match dest.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| StorageError::io("create", &dir, e))?;
        let part = PartFile {
            path: dir.join(format!(".part-{}", uuid::Uuid::new_v4().simple())),
            kept: false,
        };
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part.path)
            .await
            .map_err(|e| StorageError::io("create", &part.path, e))?;
        Ok((part, file))
    }

    /// Writes `bytes` to `file`, naming the part file in an error.
    pub(crate) async fn write(
        &self,
        file: &mut tokio::fs::File,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        file.write_all(bytes)
            .await
            .map_err(|e| StorageError::io("write", &self.path, e))
    }

    /// Flushes `file` and renames the part file to `dest`.
    pub(crate) async fn persist(
        mut self,
        mut file: tokio::fs::File,
        dest: &Path,
    ) -> Result<(), StorageError> {
        file.flush()
            .await
            .map_err(|e| StorageError::io("flush", &self.path, e))?;
        drop(file);
        tokio::fs::rename(&self.path, dest)
            .await
            .map_err(|e| StorageError::io("rename", dest, e))?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
