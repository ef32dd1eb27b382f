//! Where the database file is, and the checks made before opening it, with messages that show
//! an operator the absolute path looked at.

use std::path::{Path, PathBuf};

/// The file a `sqlite://PATH` (or `sqlite:PATH`) URL names.
pub fn database_path(url: &str) -> anyhow::Result<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| anyhow::anyhow!("a SQLite URL looks like sqlite://PATH"))?;
    anyhow::ensure!(
        !path.is_empty() && !path.contains(":memory:") && !path.contains('?'),
        "maestro needs a SQLite file (sqlite://PATH, no options); an in-memory database would \
         lose every alert"
    );
    Ok(PathBuf::from(path))
}

/// A path as an operator needs to see it in a message: absolute, so that a command run in
/// the wrong directory shows where it looked.
pub fn shown(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

/// Refuses a database file that does not exist: only `serve` and `migrate` make one.
pub fn ensure_exists(path: &Path) -> anyhow::Result<()> {
    let exists = path
        .try_exists()
        .map_err(|err| anyhow::anyhow!("cannot open the database file {}: {err}", shown(path)))?;
    anyhow::ensure!(
        exists,
        "the database file {} does not exist (only `maestro serve` and `maestro migrate` create \
         one; give --database-url or MAESTRO_DATABASE_URL, or run from the directory that holds \
         it)",
        shown(path)
    );
    Ok(())
}

/// Refuses a database file whose directory does not exist (before its key file is made there).
pub fn ensure_directory(path: &Path) -> anyhow::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => return Ok(()),
    };
    anyhow::ensure!(
        directory.is_dir(),
        "cannot open the database file {}: the directory {} does not exist",
        shown(path),
        shown(directory)
    );
    Ok(())
}
