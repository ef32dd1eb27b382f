//! A consistent copy of a live database: `VACUUM INTO`, which reads the database in one read
//! transaction (a snapshot: writers go on meanwhile, in WAL mode) and writes a compacted copy.
//! SQLite's online backup API would copy the same snapshot only in a single step; copied step by
//! step, it starts over whenever another process writes, and under steady writes it may never
//! finish.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;

use rusqlite::OpenFlags;

use super::shown;

/// Copies the database at `source` to `target` (replaced if it exists). The copy is written
/// beside `target` under a temporary name, checked, synced and renamed into place, so that
/// `target` is never a partial copy.
pub fn backup(source: &Path, target: &Path, timeout: Duration) -> anyhow::Result<u64> {
    // Read-write but never created: a read-only connection could not set up the WAL index of
    // a database no server has open. VACUUM INTO writes nothing to the source.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let db = rusqlite::Connection::open_with_flags(source, flags)
        .with_context(|| format!("cannot open the database file {}", shown(source)))?;
    db.busy_timeout(timeout)?;
    let version: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0))?;
    anyhow::ensure!(
        version > 0,
        "{} is not a maestro database (it has no schema)",
        shown(source)
    );
    let draft = draft_beside(target);
    let copied = copy(&db, &draft).and_then(|()| {
        let bytes = std::fs::metadata(&draft)?.len();
        std::fs::rename(&draft, target)
            .with_context(|| format!("cannot write {}", shown(target)))?;
        sync_directory(target);
        Ok(bytes)
    });
    if copied.is_err() {
        let _ = std::fs::remove_file(&draft);
    }
    copied
}

fn copy(db: &rusqlite::Connection, draft: &Path) -> anyhow::Result<()> {
    let name = draft
        .to_str()
        .context("the backup file's name is not valid UTF-8")?;
    db.execute("VACUUM INTO ?1", [name])
        .with_context(|| format!("cannot write the copy {}", shown(draft)))?;
    let copy = rusqlite::Connection::open(draft)?;
    let check: String = copy.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    anyhow::ensure!(
        check == "ok",
        "the copy failed its integrity check: {check}"
    );
    drop(copy);
    // VACUUM INTO does not sync what it wrote.
    std::fs::File::open(draft)?.sync_all()?;
    Ok(())
}

fn draft_beside(target: &Path) -> PathBuf {
    let name = target.file_name().map_or_else(
        || "backup".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    target.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()))
}

/// Makes the rename durable (best effort: not every system can sync a directory).
fn sync_directory(path: &Path) {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(directory) = std::fs::File::open(directory) {
        let _ = directory.sync_all();
    }
}
