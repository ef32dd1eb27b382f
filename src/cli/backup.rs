//! `maestro backup FILE`: a consistent copy of the SQLite database, taken while the server
//! runs, with its key file beside it (`FILE.key`), so that `maestro serve --database-url
//! sqlite://FILE` opens the copy as it would the original.

use std::path::PathBuf;

use crate::{
    config::{DatabaseArgs, Layered},
    store::{key_file, sqlite},
};

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Where to write the copy; its key file goes beside it as FILE.key.
    pub file: PathBuf,
    /// Replace FILE and FILE.key if they exist.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub database: Layered<DatabaseArgs>,
}

pub async fn run(args: BackupArgs) -> anyhow::Result<()> {
    let url = args.database.url.as_str();
    anyhow::ensure!(
        url.starts_with("sqlite:"),
        "maestro backup copies SQLite databases only: back up PostgreSQL with its own tools, \
         e.g. `pg_dump --format=custom --file=maestro.dump DATABASE_URL` (see docs/OPERATIONS.md)"
    );
    let source = sqlite::database_path(url)?;
    sqlite::ensure_exists(&source)?;
    let target = args.file;
    if let Some(directory) = target
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        anyhow::ensure!(
            directory.is_dir(),
            "cannot write {}: the directory {} does not exist",
            sqlite::shown(&target),
            sqlite::shown(directory)
        );
    }
    let target_key = key_file::path_beside(&target);
    for path in [&target, &target_key] {
        anyhow::ensure!(
            args.force || !path.exists(),
            "{} exists already; give --force to replace it",
            sqlite::shown(path)
        );
    }
    let timeout = args.database.database_timeout;
    let copy = target.clone();
    let bytes = {
        let source = source.clone();
        tokio::task::spawn_blocking(move || sqlite::backup(&source, &copy, timeout)).await??
    };
    eprintln!(
        "copied {} to {} ({bytes} bytes)",
        sqlite::shown(&source),
        sqlite::shown(&target)
    );
    // The copy's signing keys and postback secrets are encrypted: without the key they sealed
    // under, it is of no use.
    if args.database.master_key.is_some() {
        eprintln!(
            "note: the secrets in the copy are encrypted under MAESTRO_MASTER_KEY; keep that key: \
             restoring the copy needs it"
        );
    } else {
        match key_file::copy_beside(&source, &target)? {
            Some(key) => eprintln!(
                "copied the master key file to {}: keep it with the copy, and as private",
                sqlite::shown(&key)
            ),
            None => eprintln!(
                "warning: there is no key file {}: the secrets in the copy need the master key \
                 they were encrypted under (MAESTRO_MASTER_KEY)",
                sqlite::shown(&key_file::path_beside(&source))
            ),
        }
    }
    Ok(())
}
