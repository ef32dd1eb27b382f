//! Opening SQLite connections with maestro's settings, and the schema migrations.

use std::{path::Path, time::Duration};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::ext_refs;

/// Migrations, in order; `PRAGMA user_version` records how many have run.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_subscriptions.sql"),
    include_str!("migrations/0003_company_events.sql"),
    include_str!("migrations/0004_delivery.sql"),
    include_str!("migrations/0005_inbox.sql"),
    include_str!("migrations/0006_renderings.sql"),
    include_str!("migrations/0007_metadata_documents.sql"),
    include_str!("migrations/0008_delivery_partner_cap.sql"),
    include_str!("migrations/0009_key_and_secret_rotation.sql"),
    include_str!("migrations/0010_app_center.sql"),
    include_str!("migrations/0011_withdrawal.sql"),
    include_str!("migrations/0012_downstream.sql"),
    include_str!("migrations/0013_inbox_resume_snooze_sessions.sql"),
    include_str!("migrations/0014_delivery_worker_lag.sql"),
    include_str!("migrations/0015_ext_ref_index.sql"),
];

/// Statements kept prepared per connection (the multi-row inserts come in a few shapes).
const STATEMENT_CACHE: usize = 64;

pub(super) fn open(
    path: &Path,
    busy_timeout: Duration,
    read_only: bool,
) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(busy_timeout)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if !read_only {
        // WAL: readers never wait for the writer. FULL: a commit is on disk before it returns.
        enable_wal(&connection, busy_timeout)?;
        // Checkpoints are the checkpointer thread's job (checkpointer.rs), not a commit's.
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        // When the WAL starts over, a file beyond this size is cut back to it, inside the next
        // commit. Truncating a few hundred MB there paused the writer 200-300 ms, so the limit
        // is above what the WAL reaches before the writer restarts it (checkpointer.rs), which
        // empties a large file itself once writes pause.
        connection.pragma_update(None, "journal_size_limit", 1024 * 1024 * 1024)?;
        // Statement journals and temporary indexes in memory: otherwise SQLite may create,
        // write and delete a temporary file inside a commit. They hold nothing that must
        // survive a crash (the WAL does).
        connection.pragma_update(None, "temp_store", "MEMORY")?;
    }
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    ext_refs::register_key_function(&connection)?;
    Ok(connection)
}

/// Brings the schema up to date. The whole run is one IMMEDIATE transaction, so two processes
/// opening a new file at once (a server and `maestro migrate`, say) take turns: the second
/// finds the work done. A schema newer than this binary's is refused: an older maestro would
/// misread tables a newer one changed (migrations only go forward).
///
/// Foreign keys are off while the migrations run, as SQLite's documentation asks of a schema
/// change that rebuilds a table: dropping the old table would otherwise delete the rows that
/// refer to it (0015 rebuilds `alerts`, whose revisions refer to it). The rebuilt table keeps
/// every key, so nothing is left dangling.
pub(super) fn migrate(connection: &mut Connection) -> anyhow::Result<()> {
    // A no-op inside a transaction, so set before it begins.
    connection.pragma_update(None, "foreign_keys", "OFF")?;
    let migrated = migrate_without_foreign_keys(connection);
    connection.pragma_update(None, "foreign_keys", "ON")?;
    migrated
}

fn migrate_without_foreign_keys(connection: &mut Connection) -> anyhow::Result<()> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied: usize = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    anyhow::ensure!(
        applied <= MIGRATIONS.len(),
        "its schema is at version {applied}, newer than this maestro's ({}): a newer maestro \
         upgraded it; run that version",
        MIGRATIONS.len()
    );
    for sql in MIGRATIONS.iter().skip(applied) {
        tx.execute_batch(sql)?;
    }
    if applied < MIGRATIONS.len() {
        tx.pragma_update(None, "user_version", MIGRATIONS.len())?;
    }
    Ok(tx.commit()?)
}

/// Switches a new database to WAL. The switch needs the file to itself, and SQLite does not
/// wait for that on its own (no busy handler here): when several processes open one new file
/// at once, the others retry until the first is done, up to the busy timeout.
fn enable_wal(connection: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + busy_timeout;
    loop {
        match connection.pragma_update(None, "journal_mode", "WAL") {
            Err(err)
                if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}
