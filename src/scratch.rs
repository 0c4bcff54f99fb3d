//! Per-job scratch directories that are removed on every path: when the job ends, when its
//! future is dropped (a time limit, an abort at shutdown), and when a second signal forces the
//! process out (destructors do not run then, so live directories are also registered and
//! [`remove_all`] deletes them before the exit).
//!
//! Directories are named `fetch-worker-<pid>-<uuid>` under the system temp dir, so an operator
//! can tell which process left one behind after a SIGKILL.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The scratch directories alive in this process.
static LIVE: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn live() -> MutexGuard<'static, Option<HashSet<PathBuf>>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scratch directory path, removed (with its contents) when dropped. The directory itself is
/// created by whoever first writes into it; creating the path costs nothing.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A fresh, unique path under the system temp dir, registered for [`remove_all`].
    pub fn new() -> ScratchDir {
        Self::under(&std::env::temp_dir())
    }

    /// A fresh, unique path under `root`, registered for [`remove_all`].
    pub fn under(root: &Path) -> ScratchDir {
        let path = root.join(format!(
            "fetch-worker-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        live().get_or_insert_with(HashSet::new).insert(path.clone());
        ScratchDir { path }
    }

    /// Where the directory is; it exists until this value is dropped.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for ScratchDir {
    fn default() -> Self {
        ScratchDir::new()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Blocking, but a scratch directory holds one day's few files.
        let _ = std::fs::remove_dir_all(&self.path);
        if let Some(set) = live().as_mut() {
            set.remove(&self.path);
        }
    }
}

/// Removes every live scratch directory of this process (before a forced exit).
pub fn remove_all() {
    let paths: Vec<PathBuf> = live()
        .as_mut()
        .map(|set| set.drain().collect())
        .unwrap_or_default();
    for path in paths {
        let _ = std::fs::remove_dir_all(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test, not two: `remove_all` is process-wide and would race a parallel test's guard.
    #[test]
    fn dropping_or_remove_all_deletes_the_directory_and_its_files() {
        let root = tempfile::tempdir().unwrap();
        let scratch = ScratchDir::under(root.path());
        std::fs::create_dir_all(scratch.path()).unwrap();
        std::fs::write(scratch.path().join("a.csv"), b"x").unwrap();
        let path = scratch.path().to_path_buf();
        drop(scratch);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);

        let scratch = ScratchDir::under(root.path());
        std::fs::create_dir_all(scratch.path()).unwrap();
        std::fs::write(scratch.path().join("b.csv"), b"y").unwrap();
        // As on a forced exit: the guard is never dropped.
        let scratch = std::mem::ManuallyDrop::new(scratch);
        remove_all();
        assert!(!scratch.path().exists());
    }
}
