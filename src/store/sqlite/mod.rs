//! The embedded default: SQLite in WAL mode.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`, so a transaction is fsynced to the WAL
//! before `COMMIT` returns, and the API answers 200 only after that. An acknowledged alert
//! therefore survives `kill -9` *and* a power cut; `NORMAL` would survive the former only.
//!
//! Concurrency: SQLite has one writer at a time. All writes go through a pool of exactly one
//! connection and start with `BEGIN IMMEDIATE`, so writers queue in-process (bounded by the
//! acquire timeout) instead of failing with `SQLITE_BUSY` on a read-to-write upgrade. Reads use
//! a separate pool and never wait for writers (WAL).

mod alerts;
mod catalog;
mod group_commit;
mod rows;

use std::{future::Future, str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use super::{
    AlertChange, AlertOwner, AlertRecord, AlertTarget, CreateOutcome, ImportReport, NewAlert,
    OutboxEvent, PartnerImport, PartnerRecord, RevisionRecord, SigningKeyRecord, Store, StoreError,
    StoreResult, TemplateRecord, UpdateOutcome, migrations,
};

const MIGRATIONS: &[migrations::EmbeddedMigration] =
    &[(1, "init", include_str!("migrations/0001_init.sql"))];

const READ_CONNECTIONS: u32 = 4;

pub struct SqliteStore {
    /// Alert writes, committed in groups.
    alerts_writer: group_commit::GroupCommit,
    /// Every other (rare) write: partner imports, signing keys.
    writer: SqlitePool,
    reader: SqlitePool,
    timeout: Duration,
}

impl SqliteStore {
    /// Opens the database file, creating and migrating it when needed.
    pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(timeout);
        anyhow::ensure!(
            !options.get_filename().as_os_str().is_empty()
                && options.get_filename() != std::path::Path::new(":memory:"),
            "maestro needs a SQLite file (sqlite://PATH); an in-memory database would lose every alert"
        );
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect_with(options.clone())
            .await?;
        // SQLite has no advisory locks: two processes opening a new file at once (a server and
        // `maestro token issue`, say) would both try to migrate it. One IMMEDIATE transaction
        // around the whole run makes the second wait and then find the work done.
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        migrations::migrator(MIGRATIONS)
            .await?
            .run_direct(&mut *tx)
            .await?;
        tx.commit().await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(timeout)
            .connect_with(options.clone().read_only(true))
            .await?;
        Ok(SqliteStore {
            alerts_writer: group_commit::GroupCommit::start(&options).await?,
            writer,
            reader,
            timeout,
        })
    }

    /// Runs one database call under the configured timeout, translating its failure.
    async fn timed<T>(&self, call: impl Future<Output = Result<T, sqlx::Error>>) -> StoreResult<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(StoreError::Timeout),
        }
    }
}

/// Lock contention and pool exhaustion are timeouts (504); a lost file is unavailability.
fn classify(err: sqlx::Error) -> StoreError {
    if is_lock_timeout(&err) {
        return StoreError::Timeout;
    }
    match &err {
        sqlx::Error::PoolClosed | sqlx::Error::Io(_) => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Other(err.into()),
    }
}

/// The database stayed locked (or the pool busy) past the timeout.
fn is_lock_timeout(err: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i64 = 5;
    const SQLITE_LOCKED: i64 = 6;
    match err {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => matches!(
            db.code()
                .and_then(|code| code.parse::<i64>().ok())
                .map(|code| code & 0xff),
            Some(SQLITE_BUSY | SQLITE_LOCKED)
        ),
        _ => false,
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.timed(async {
            sqlx::query("SELECT 1").execute(&self.reader).await?;
            Ok(())
        })
        .await
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.timed(catalog::signing_keys(&self.reader)).await
    }

    async fn add_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool> {
        self.timed(catalog::add_first_signing_key(&self.writer, key))
            .await
    }

    async fn partner_count(&self) -> StoreResult<i64> {
        self.timed(async {
            sqlx::query_scalar("SELECT COUNT(*) FROM partners")
                .fetch_one(&self.reader)
                .await
        })
        .await
    }

    async fn import_partner(&self, import: &PartnerImport) -> StoreResult<ImportReport> {
        self.timed(catalog::import_partner(&self.writer, import))
            .await
    }

    async fn partners(&self) -> StoreResult<Vec<PartnerRecord>> {
        self.timed(catalog::partners(&self.reader)).await
    }

    async fn partner_with_templates(
        &self,
        partner_id: &str,
    ) -> StoreResult<Option<(PartnerRecord, Vec<TemplateRecord>)>> {
        self.timed(catalog::partner_with_templates(&self.reader, partner_id))
            .await
    }

    async fn create_alert(&self, alert: &NewAlert) -> StoreResult<CreateOutcome> {
        self.alerts_writer.create(alert, self.timeout).await
    }

    async fn update_alert(
        &self,
        target: &AlertTarget,
        change: &AlertChange,
    ) -> StoreResult<UpdateOutcome> {
        self.alerts_writer
            .update(target, change, self.timeout)
            .await
    }

    async fn alert(&self, owner: &AlertOwner, alert_id: &str) -> StoreResult<Option<AlertRecord>> {
        self.timed(alerts::find(&self.reader, owner, alert_id))
            .await
    }

    async fn alert_revisions(&self, alert_id: &str) -> StoreResult<Vec<RevisionRecord>> {
        self.timed(alerts::revisions(&self.reader, alert_id)).await
    }

    async fn outbox_after(&self, after: i64, limit: i64) -> StoreResult<Vec<OutboxEvent>> {
        self.timed(alerts::outbox_after(&self.reader, after, limit))
            .await
    }
}
