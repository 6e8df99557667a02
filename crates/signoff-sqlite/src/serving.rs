//! One serving process per SQLite file.
//!
//! Several processes on one file would each answer from their own caches and learn of the
//! others' revocations only at their next poll of the feed, so a logged-out cookie could be
//! accepted by another process for a moment. signoff's answer for several nodes is PostgreSQL,
//! where the node protocol makes every revocation strict; on SQLite a second `serve` is
//! refused instead. Short-lived tools (the CLI) still open the file beside a server.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// The claim of this process on a database file; held until dropped (or the process ends,
/// however it ends: the operating system releases the lock).
#[derive(Debug)]
pub struct ServingLock {
    _file: File,
}

/// Why the file could not be claimed.
#[derive(Debug)]
pub enum ClaimError {
    /// Another process serves it.
    Taken(PathBuf),
    Io(PathBuf, std::io::Error),
}

impl std::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Taken(path) => write!(
                f,
                "another signoff process is serving {} already: run one `signoff serve` per SQLite file \
                 (several nodes need PostgreSQL: SIGNOFF_DATABASE_URL=postgres://…)",
                path.display()
            ),
            Self::Io(path, e) => write!(f, "cannot lock {}: {e}", path.display()),
        }
    }
}

impl std::error::Error for ClaimError {}

/// Claims the database at `path` for this process's server (an exclusive advisory lock on a
/// `PATH.serving` file beside the file the path resolves to, symbolic links followed, which
/// SQLite's own locks never touch). A file not created yet is claimed by the path given.
pub fn claim(path: &Path) -> Result<ServingLock, ClaimError> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| {
        // Not created yet: its folder resolved, so a later claim of the created file agrees.
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        match (std::fs::canonicalize(folder), path.file_name()) {
            (Ok(folder), Some(name)) => folder.join(name),
            _ => path.to_owned(),
        }
    });
    let mut name = path.as_os_str().to_owned();
    name.push(".serving");
    let lock_path = PathBuf::from(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| ClaimError::Io(lock_path.clone(), e))?;
    match file.try_lock() {
        Ok(()) => Ok(ServingLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(ClaimError::Taken(path)),
        Err(TryLockError::Error(e)) => Err(ClaimError::Io(lock_path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("signoff-serving-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let db = dir.join("a.db");
        let first = claim(&db).expect("first");
        let second = claim(&db).expect_err("second");
        assert!(second.to_string().contains("a.db") && second.to_string().contains("PostgreSQL"), "{second}");
        std::fs::write(&db, b"").expect("file");
        let link = dir.join("link.db");
        std::os::unix::fs::symlink(&db, &link).expect("symlink");
        assert!(claim(&link).is_err(), "the same file under another name is the same file");
        drop(first);
        assert!(claim(&db).is_ok(), "free again");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
