//! Where the master key comes from: `MAESTRO_MASTER_KEY` (`--master-key`) when given; else, on
//! SQLite, a key file beside the database (`PATH.key`), made on first use. PostgreSQL is shared
//! by several instances, which must all hold the same key, so there the variable is required.

use std::{
    ffi::OsString,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;

use super::{
    Open,
    secrets::{MasterKey, Secrets},
};
use crate::config::Secret;

const VARIABLE: &str = "MAESTRO_MASTER_KEY";

/// The key given in the settings, required.
pub(super) fn required(given: Option<&Secret>) -> anyhow::Result<Secrets> {
    let given = given.with_context(|| {
        format!(
            "{VARIABLE} is not set: a PostgreSQL database keeps its signing keys and postback \
             secrets encrypted under it, and every instance needs the same one. Make one with \
             `openssl rand -base64 32` and give it to every instance (or use --master-key)"
        )
    })?;
    from_settings(given)
}

/// The key given in the settings, or the database's key file (made if missing, when `open`
/// may create the database).
pub(super) fn for_sqlite(
    given: Option<&Secret>,
    database: &Path,
    open: Open,
) -> anyhow::Result<Secrets> {
    match given {
        Some(given) => from_settings(given),
        None => {
            let path = path_beside(database);
            let key = match open {
                Open::CreateIfMissing => read_or_create(&path)?,
                Open::Existing => read(&path)?.with_context(|| {
                    format!(
                        "there is no master key: {VARIABLE} is not set and there is no key file \
                         {} beside the database (give the key the database was made with)",
                        super::sqlite::shown(&path)
                    )
                })?,
            };
            Ok(Secrets::new(
                &key,
                format!("the key file {}", path.display()),
            ))
        }
    }
}

fn from_settings(given: &Secret) -> anyhow::Result<Secrets> {
    let key = MasterKey::from_base64(given.expose())
        .with_context(|| format!("{VARIABLE} (--master-key) is not a valid master key"))?;
    Ok(Secrets::new(&key, VARIABLE))
}

/// `maestro.db` → `maestro.db.key`.
pub fn path_beside(database: &Path) -> PathBuf {
    let mut path = OsString::from(database.as_os_str());
    path.push(".key");
    PathBuf::from(path)
}

/// Copies the key file of the database `source`, if it has one, beside the database `target`
/// (private, replacing one there), so that the copy opens as the original does. Returns the
/// path written.
pub fn copy_beside(source: &Path, target: &Path) -> anyhow::Result<Option<PathBuf>> {
    let from = path_beside(source);
    let Some(key) = read(&from)? else {
        return Ok(None);
    };
    let to = path_beside(target);
    let draft = PathBuf::from(format!("{}.{}.tmp", to.display(), uuid::Uuid::new_v4()));
    let written = write_private(&draft, &format!("{}\n", key.to_base64()))
        .and_then(|()| std::fs::rename(&draft, &to))
        .with_context(|| format!("cannot write the key file {}", to.display()));
    if written.is_err() {
        let _ = std::fs::remove_file(&draft);
    }
    written.map(|()| Some(to))
}

/// Reads the key file, or makes it. Two processes opening a new database at once agree on one
/// key: each writes a complete file of its own (mode 0600) and links it into place, which fails
/// if the name exists already; the loser reads the winner's. No reader sees a half-written key.
fn read_or_create(path: &Path) -> anyhow::Result<MasterKey> {
    if let Some(key) = read(path)? {
        return Ok(key);
    }
    let key = MasterKey::generate();
    let draft = PathBuf::from(format!("{}.{}.tmp", path.display(), uuid::Uuid::new_v4()));
    let written = write_private(&draft, &format!("{}\n", key.to_base64()))
        .with_context(|| format!("writing the master key file {}", draft.display()));
    let linked = written.and_then(|()| {
        std::fs::hard_link(&draft, path).or_else(|err| match err.kind() {
            std::io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(err).with_context(|| format!("creating {}", path.display())),
        })
    });
    let _ = std::fs::remove_file(&draft);
    linked?;
    let key = read(path)?.with_context(|| format!("{} vanished", path.display()))?;
    tracing::info!(path = %path.display(), "made the master key file that encrypts the stored secrets; back it up with the database");
    Ok(key)
}

fn read(path: &Path) -> anyhow::Result<Option<MasterKey>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            MasterKey::from_base64(&text)
                .with_context(|| format!("the master key file {}", path.display()))
                .map(Some)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the master key file can be read by other users than its owner; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::secrets::Column;

    #[test]
    fn a_key_file_is_made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("maestro.db");
        let first = for_sqlite(None, &database, Open::CreateIfMissing).unwrap();
        let path = dir.path().join("maestro.db.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        MasterKey::from_base64(&text).unwrap();
        let sealed = first.seal(Column::SigningKey, "k", "pem");
        let second = for_sqlite(None, &database, Open::CreateIfMissing).unwrap();
        assert_eq!(
            second.open(Column::SigningKey, "k", &sealed).unwrap(),
            "pem"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no drafts left"
        );
    }

    #[test]
    fn processes_making_the_key_file_at_once_agree_on_one() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("maestro.db");
        let opened: Vec<Secrets> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| for_sqlite(None, &database, Open::CreateIfMissing).unwrap())
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let sealed = opened[0].seal(Column::SigningKey, "k", "pem");
        for secrets in &opened {
            assert_eq!(
                secrets.open(Column::SigningKey, "k", &sealed).unwrap(),
                "pem"
            );
        }
    }

    #[test]
    fn the_variable_wins_over_the_key_file_and_is_required_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("maestro.db");
        let given = Secret::new(MasterKey::generate().to_base64());
        for_sqlite(Some(&given), &database, Open::CreateIfMissing).unwrap();
        assert!(
            !path_beside(&database).exists(),
            "no key file when the key is given"
        );
        let missing = required(None).unwrap_err().to_string();
        assert!(missing.contains("MAESTRO_MASTER_KEY"), "{missing}");
        let bad = Secret::new("c2hvcnQ=");
        let message = format!("{:#}", required(Some(&bad)).unwrap_err());
        assert!(
            message.contains("MAESTRO_MASTER_KEY") && !message.contains("c2hvcnQ="),
            "{message}"
        );
    }
}
