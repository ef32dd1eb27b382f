//! Writes the database file's pages to disk from the checkpointer's thread.
//!
//! A PASSIVE checkpoint syncs the database file only when it copied the WAL to its very end.
//! Under sustained writes the writer commits more while a pass copies, so no pass reaches the
//! end: the pages they copy stay dirty in the page cache (hundreds of MB between two WAL
//! restarts) until the writer's own pass (`CatchUp`) completes a checkpoint, and then its fsync
//! writes them all while the writer's queue waits: 36-100 ms, the worst requests of a run. The
//! checkpointer flushes them itself after its passes instead, so that the writer's fsync only
//! writes what was copied since. An extra flush never weakens durability: SQLite still syncs
//! the file before the WAL may start over.
//!
//! The flush needs a file descriptor of its own, and that descriptor is never closed: closing
//! any descriptor of a file drops every POSIX lock the process holds on it, SQLite's included
//! (in WAL mode each connection holds a shared lock on the database file for as long as it is
//! open, which keeps another process from deleting the WAL under it). So there is one per
//! database file per process, opened the first time that file needs a flush (only under
//! sustained writes) and kept in a process-wide table.

use std::{
    collections::{HashMap, hash_map::Entry},
    fs::File,
    io,
    os::unix::fs::MetadataExt,
    path::Path,
    sync::{Arc, LazyLock, Mutex, PoisonError},
};

/// A file's identity: its device and inode numbers.
type FileId = (u64, u64);

/// The descriptors opened for flushing, by file: never closed (see above).
static DESCRIPTORS: LazyLock<Mutex<HashMap<FileId, Arc<File>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Writes the dirty pages of the database file at `path` to disk (fdatasync).
pub(super) fn flush(path: &Path) -> io::Result<()> {
    descriptor(path)?.sync_data()
}

/// This process's flushing descriptor of the file at `path`, opened on first use.
fn descriptor(path: &Path) -> io::Result<Arc<File>> {
    let metadata = std::fs::metadata(path)?;
    let key = (metadata.dev(), metadata.ino());
    let mut descriptors = DESCRIPTORS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(file) = descriptors.get(&key) {
        return Ok(file.clone());
    }
    let file = Arc::new(File::open(path)?);
    // Filed under the inode it opened, should the path have been replaced in between.
    let key = file
        .metadata()
        .map_or(key, |opened| (opened.dev(), opened.ino()));
    match descriptors.entry(key) {
        Entry::Vacant(vacant) => Ok(vacant.insert(file).clone()),
        Entry::Occupied(kept) => {
            // That inode had one already: this one is not needed, but dropping it would close it.
            std::mem::forget(file);
            Ok(kept.get().clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_descriptor_per_database_file_kept_for_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.db");
        let second = dir.path().join("second.db");
        std::fs::write(&first, b"first").unwrap();
        std::fs::write(&second, b"second").unwrap();
        flush(&first).unwrap();
        let again = descriptor(&first).unwrap();
        assert!(Arc::ptr_eq(&again, &descriptor(&first).unwrap()));
        assert!(!Arc::ptr_eq(&again, &descriptor(&second).unwrap()));

        // A new file at the same path is another inode: it gets a descriptor of its own.
        std::fs::remove_file(&first).unwrap();
        std::fs::write(&first, b"replaced").unwrap();
        assert!(!Arc::ptr_eq(&again, &descriptor(&first).unwrap()));
    }

    #[test]
    fn a_missing_file_is_an_error_not_a_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        assert!(flush(&dir.path().join("missing.db")).is_err());
    }
}
