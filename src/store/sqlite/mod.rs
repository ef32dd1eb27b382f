//! The embedded default: SQLite in WAL mode, through `rusqlite`.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`, so a transaction is fsynced to the WAL
//! before `COMMIT` returns, and the API answers 200 only after that. An acknowledged alert
//! therefore survives `kill -9` *and* a power cut; `NORMAL` would survive the former only.
//!
//! Concurrency: SQLite has one writer at a time. Every write goes to the one writer thread
//! (`writer.rs`), which commits concurrent alert writes together (group commit). Reads use a few
//! read-only connections on blocking threads (`read_pool.rs`) and never wait for the writer.
//! Checkpoints run in the background (`checkpointer.rs`), never inside a request's commit; under
//! sustained load the writer finishes one between two batches, so the WAL can start over.
//!
//! Why `rusqlite` and not sqlx here: SQLite is a library, not a server, and its calls are
//! synchronous. sqlx runs each SQLite connection on a worker thread of its own and hands every
//! statement across threads; on a busy two-core machine each hand-off waited for a CPU and
//! capped ingestion (see docs/PERFORMANCE.md). `rusqlite` runs statements on the calling
//! thread. PostgreSQL keeps sqlx: one crate per backend.

mod alert_reads;
mod alerts;
mod app_center;
mod backup;
mod catalog;
mod checkpointer;
mod connection;
mod database_flush;
mod deliveries;
mod downstream;
mod events;
mod ext_refs;
mod files;
mod inbox;
mod inbox_actions;
mod inbox_sessions;
mod keys;
mod read_pool;
mod refresh_tokens;
mod rows;
mod subscriptions;
mod withdrawal;
mod worker_lag;
mod writer;

use std::{path::Path, time::Duration};

use async_trait::async_trait;
use rusqlite::ErrorCode;

use time::OffsetDateTime;

use super::{
    AlertChange, AlertOwner, AlertRecord, AlertTarget, CreateOutcome, ImportReport, InboxItem,
    InboxMark, InboxOwner, InboxPage, InboxQuery, NewAlert, OutboxEvent, PartnerImport,
    PartnerRecord, RetireOutcome, RevisionRecord, SigningKeyRecord, Store, StoreError, StoreResult,
    Subscription, TemplateRecord, UpdateOutcome, WithdrawOutcome, WithdrawTarget,
    delivery_types::{
        AttemptRecord, ClaimRequest, ClaimedDelivery, DeliveryBacklog, DeliveryFilter,
        DeliveryRecord, DeliverySummary, FinishedAttempt, NewCompanyEvent, ReplayOutcome,
        SnapshotKey, WorkerStep,
    },
    secrets::{Column, Secrets},
};

pub use backup::backup;
pub use files::{database_path, ensure_directory, ensure_exists, shown};

/// Registers the SQL functions maestro's schema uses (`maestro_ext_ref_key`) on a connection
/// of the caller's own, such as the benchmarks' bulk loader.
pub fn register_sql_functions(db: &rusqlite::Connection) -> rusqlite::Result<()> {
    ext_refs::register_key_function(db)
}

const READ_CONNECTIONS: usize = 4;

pub struct SqliteStore {
    writer: writer::Writer,
    readers: read_pool::ReadPool,
    /// Seals the secrets on their way in, opens them on their way out.
    secrets: Secrets,
    _checkpointer: checkpointer::Checkpointer,
}

impl SqliteStore {
    /// Opens the database file (see [`database_path`]), creating and migrating it when needed,
    /// and seals the secrets still stored in the clear.
    pub async fn connect(path: &Path, timeout: Duration, secrets: Secrets) -> anyhow::Result<Self> {
        let catch_up = checkpointer::CatchUp::default();
        let writer = writer::Writer::start(path, timeout, catch_up.clone()).await?;
        let sealing = secrets.clone();
        let sealed = writer
            .exclusive(move |tx| keys::seal_plaintext(tx, &sealing))
            .await?;
        if sealed > 0 {
            tracing::info!(sealed, "encrypted the secrets stored in the clear");
        }
        let readers = (0..READ_CONNECTIONS)
            .map(|_| connection::open(path, timeout, true))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(SqliteStore {
            writer,
            readers: read_pool::ReadPool::new(readers),
            secrets,
            _checkpointer: checkpointer::Checkpointer::start(path, timeout, catch_up)?,
        })
    }
}

/// Lock contention past the busy timeout is a timeout (504); anything else is unexpected.
fn classify(err: rusqlite::Error) -> StoreError {
    if is_lock_timeout(&err) {
        StoreError::Timeout
    } else {
        StoreError::Other(err.into())
    }
}

/// The database stayed locked past the busy timeout.
fn is_lock_timeout(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.readers
            .read(|db| db.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let sealed = self.readers.read(keys::signing_keys).await?;
        Ok(self.secrets.open_keys(sealed)?)
    }

    async fn add_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool> {
        let key = self.secrets.seal_key(key);
        self.writer
            .exclusive(move |tx| keys::add_first_signing_key(tx, &key))
            .await
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()> {
        let key = self.secrets.seal_key(key);
        self.writer
            .exclusive(move |tx| keys::add_signing_key(tx, &key))
            .await
    }

    async fn record_signed_until(&self, kid: &str, until: OffsetDateTime) -> StoreResult<bool> {
        let kid = kid.to_owned();
        self.writer
            .exclusive(move |tx| keys::record_signed_until(tx, &kid, until))
            .await
    }

    async fn retire_signing_key(
        &self,
        kid: &str,
        at: OffsetDateTime,
        expired_before: OffsetDateTime,
        force: bool,
    ) -> StoreResult<RetireOutcome> {
        let kid = kid.to_owned();
        self.writer
            .exclusive(move |tx| keys::retire_signing_key(tx, &kid, at, expired_before, force))
            .await
    }

    async fn partner_count(&self) -> StoreResult<i64> {
        self.readers.read(catalog::partner_count).await
    }

    async fn import_partner(&self, import: &PartnerImport) -> StoreResult<ImportReport> {
        let import = self.secrets.seal_import(import);
        self.writer
            .exclusive(move |tx| catalog::import_partner(tx, &import))
            .await
    }

    async fn rotate_postback_secret(
        &self,
        partner_id: &str,
        secret: &str,
        previous_until: OffsetDateTime,
    ) -> StoreResult<bool> {
        let sealed = self
            .secrets
            .seal(Column::PostbackSecret, partner_id, secret);
        let partner_id = partner_id.to_owned();
        self.writer
            .exclusive(move |tx| {
                catalog::rotate_postback_secret(tx, &partner_id, &sealed, previous_until)
            })
            .await
    }

    async fn partners(&self) -> StoreResult<Vec<PartnerRecord>> {
        let sealed = self.readers.read(catalog::partners).await?;
        Ok(self.secrets.open_partners(sealed)?)
    }

    async fn partner_with_templates(
        &self,
        partner_id: &str,
    ) -> StoreResult<Option<(PartnerRecord, Vec<TemplateRecord>)>> {
        let partner_id = partner_id.to_owned();
        let found = self
            .readers
            .read(move |db| catalog::partner_with_templates(db, &partner_id))
            .await?;
        let Some((partner, templates)) = found else {
            return Ok(None);
        };
        Ok(Some((self.secrets.open_partner(partner)?, templates)))
    }

    async fn create_alert(&self, alert: &NewAlert) -> StoreResult<CreateOutcome> {
        self.writer.create(alert).await
    }

    async fn update_alert(
        &self,
        target: &AlertTarget,
        change: &AlertChange,
    ) -> StoreResult<UpdateOutcome> {
        self.writer.update(target, change).await
    }

    async fn withdraw_alert(
        &self,
        target: &WithdrawTarget,
        at: OffsetDateTime,
    ) -> StoreResult<WithdrawOutcome> {
        let target = target.clone();
        self.writer
            .exclusive(move |tx| withdrawal::withdraw(tx, &target, at))
            .await
    }

    async fn alert(&self, owner: &AlertOwner, alert_id: &str) -> StoreResult<Option<AlertRecord>> {
        let (owner, alert_id) = (owner.clone(), alert_id.to_owned());
        self.readers
            .read(move |db| alert_reads::find(db, &owner, &alert_id))
            .await
    }

    async fn alert_revisions(&self, alert_id: &str) -> StoreResult<Vec<RevisionRecord>> {
        let alert_id = alert_id.to_owned();
        self.readers
            .read(move |db| alert_reads::revisions(db, &alert_id))
            .await
    }

    async fn outbox_after(&self, after: i64, limit: i64) -> StoreResult<Vec<OutboxEvent>> {
        self.readers
            .read(move |db| alert_reads::outbox_after(db, after, limit))
            .await
    }

    async fn outbox_head(&self) -> StoreResult<i64> {
        self.readers.read(alert_reads::outbox_head).await
    }

    async fn inbox_page(&self, query: &InboxQuery) -> StoreResult<InboxPage> {
        let query = query.clone();
        self.readers.read(move |db| inbox::page(db, &query)).await
    }

    async fn inbox_item(
        &self,
        owner: &InboxOwner,
        alert_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<InboxItem>> {
        let (owner, alert_id) = (owner.clone(), alert_id.to_owned());
        self.readers
            .read(move |db| inbox::find(db, &owner, &alert_id, now))
            .await
    }

    async fn inbox_unread_count(
        &self,
        owner: &InboxOwner,
        now: OffsetDateTime,
    ) -> StoreResult<i64> {
        let owner = owner.clone();
        self.readers
            .read(move |db| inbox::unread_count(db, &owner, now))
            .await
    }

    async fn mark_inbox(
        &self,
        owner: &InboxOwner,
        alert_id: &str,
        mark: InboxMark,
        now: OffsetDateTime,
    ) -> StoreResult<Option<bool>> {
        let (owner, alert_id) = (owner.clone(), alert_id.to_owned());
        self.writer
            .exclusive(move |tx| inbox::mark(tx, &owner, &alert_id, mark, now))
            .await
    }

    async fn expire_alerts(&self, now: OffsetDateTime, limit: i64) -> StoreResult<u64> {
        self.writer
            .exclusive(move |tx| inbox::expire(tx, now, limit))
            .await
    }

    async fn purge_expired(&self, cutoff: OffsetDateTime, limit: i64) -> StoreResult<u64> {
        self.writer
            .exclusive(move |tx| inbox::purge(tx, cutoff, limit))
            .await
    }

    async fn subscribe(&self, subscription: &Subscription) -> StoreResult<bool> {
        let subscription = subscription.clone();
        self.writer
            .exclusive(move |tx| subscriptions::subscribe(tx, &subscription))
            .await
    }

    async fn unsubscribe(&self, subscription: &Subscription) -> StoreResult<bool> {
        let subscription = subscription.clone();
        self.writer
            .exclusive(move |tx| subscriptions::unsubscribe(tx, &subscription))
            .await
    }

    async fn subscriptions(&self, company_id: &str) -> StoreResult<Vec<Subscription>> {
        let company_id = company_id.to_owned();
        self.readers
            .read(move |db| subscriptions::of_company(db, &company_id))
            .await
    }

    async fn record_company_event(
        &self,
        event: &NewCompanyEvent,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let event = event.clone();
        self.writer
            .grouped(move |tx| events::record(tx, &event))
            .await
    }

    async fn deliveries_of(&self, event_id: &str) -> StoreResult<Vec<DeliveryRecord>> {
        let event_id = event_id.to_owned();
        self.readers
            .read(move |db| events::of_event(db, &event_id))
            .await
    }

    async fn snapshot(&self, company_id: &str, key: &SnapshotKey) -> StoreResult<Option<String>> {
        let (company_id, key) = (company_id.to_owned(), key.clone());
        self.readers
            .read(move |db| events::snapshot(db, &company_id, &key))
            .await
    }

    async fn claim_deliveries(
        &self,
        claimant: &str,
        claim: ClaimRequest,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let claimant = claimant.to_owned();
        let sealed = self
            .writer
            .relaxed(move |tx| deliveries::claim(tx, &claimant, claim))
            .await?;
        Ok(self.secrets.open_claims(sealed)?)
    }

    async fn finish_attempts(
        &self,
        claimant: &str,
        finished: &[FinishedAttempt],
    ) -> StoreResult<Vec<bool>> {
        let (claimant, finished) = (claimant.to_owned(), finished.to_vec());
        self.writer
            .relaxed(move |tx| deliveries::finish_all(tx, &claimant, &finished))
            .await
    }

    async fn finish_and_claim(
        &self,
        claimant: &str,
        finished: &[FinishedAttempt],
        claim: ClaimRequest,
    ) -> StoreResult<WorkerStep> {
        let (claimant, finished) = (claimant.to_owned(), finished.to_vec());
        let mut step = self
            .writer
            .relaxed(move |tx| deliveries::finish_and_claim(tx, &claimant, &finished, claim))
            .await?;
        step.claimed = self.secrets.open_claims(step.claimed)?;
        Ok(step)
    }

    async fn release_claims(&self) -> StoreResult<u64> {
        self.writer
            .exclusive(|tx| deliveries::release_claims(tx))
            .await
    }

    async fn delivery_backlog(&self) -> StoreResult<Vec<DeliveryBacklog>> {
        self.readers.read(deliveries::backlog).await
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<DeliverySummary>> {
        let filter = filter.clone();
        self.readers
            .read(move |db| deliveries::list(db, &filter))
            .await
    }

    async fn delivery(
        &self,
        delivery_id: &str,
    ) -> StoreResult<Option<(DeliverySummary, Vec<AttemptRecord>)>> {
        let delivery_id = delivery_id.to_owned();
        self.readers
            .read(move |db| deliveries::find(db, &delivery_id))
            .await
    }

    async fn replay_delivery(
        &self,
        delivery_id: &str,
        now: time::OffsetDateTime,
    ) -> StoreResult<ReplayOutcome> {
        let delivery_id = delivery_id.to_owned();
        self.writer
            .exclusive(move |tx| deliveries::replay(tx, &delivery_id, now))
            .await
    }

    fn shared_by_instances(&self) -> bool {
        false
    }
}
