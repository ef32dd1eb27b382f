//! Persistence: one trait with a method per use case, and one implementation per database.
//!
//! The domain talks only to [`Store`]; each backend owns its SQL and its migrations. The same
//! conformance suite (`tests/it/store_conformance.rs`) runs against every backend.

mod app_center;
mod delivery_types;
mod downstream;
mod inbox;
mod inbox_store;
pub mod key_file;
mod keys;
mod migrations;
pub mod postgres;
pub mod secrets;
pub mod sqlite;
mod stored_once;
mod types;
mod withdrawal;
mod worker_lag;

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

pub use app_center::*;
pub use delivery_types::*;
pub use downstream::*;
pub use inbox::*;
pub use inbox_store::*;
pub use keys::*;
pub use types::*;
pub use withdrawal::*;
pub use worker_lag::*;

use crate::{config::DatabaseArgs, error::Error};

/// Why a store call failed, in the terms the domain cares about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database did not answer within the configured timeout (or stayed locked).
    #[error("the database did not answer in time")]
    Timeout,
    /// The database cannot be reached at all.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl StoreError {
    /// The same error again, for a failure shared by several callers (a batch's).
    pub(crate) fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Timeout => StoreError::Timeout,
            StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
            StoreError::Other(err) => StoreError::Other(anyhow::anyhow!("{err:#}")),
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Timeout => Error::timeout(),
            StoreError::Unavailable(reason) => {
                tracing::error!(%reason, "database unavailable");
                Error::unavailable("The service cannot reach its database; retry later.")
            }
            StoreError::Other(err) => Error::Internal(err),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store:
    AppCenterStore + DownstreamStore + InboxStore + WorkerLagStore + Send + Sync + 'static
{
    /// Answers when the database is reachable (readiness).
    async fn ping(&self) -> StoreResult<()>;

    // --- signing keys -------------------------------------------------------------------
    /// Every key, retired ones too, oldest first (by `created_at`, then kid).
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Stores `key` unless the database already has a signing key (atomically, so that instances
    /// starting together settle on one key). True when `key` was stored.
    async fn add_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool>;
    /// Stores another key (a rotation): being the newest, it signs from then on.
    async fn add_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()>;
    /// Raises the key's `signed_until` to `until` unless it is later already, provided the key
    /// is not retired. False when it is retired (or unknown): nothing may be signed with it.
    async fn record_signed_until(&self, kid: &str, until: OffsetDateTime) -> StoreResult<bool>;
    /// Retires the key at `at`, unless it is the signing key (the newest not retired) or,
    /// without `force`, its `signed_until` is after `expired_before` (a token it signed may
    /// still be accepted). Atomic with `record_signed_until`.
    async fn retire_signing_key(
        &self,
        kid: &str,
        at: OffsetDateTime,
        expired_before: OffsetDateTime,
        force: bool,
    ) -> StoreResult<RetireOutcome>;

    // --- partners and templates ---------------------------------------------------------
    async fn partner_count(&self) -> StoreResult<i64>;
    /// Creates or updates a partner; a template whose content changed gets a new version.
    async fn import_partner(&self, import: &PartnerImport) -> StoreResult<ImportReport>;
    async fn partners(&self) -> StoreResult<Vec<PartnerRecord>>;
    /// Makes `secret` the partner's postback secret; the one it replaces stays valid until
    /// `previous_until` (deliveries are signed with both meanwhile). False when there is no
    /// such partner.
    async fn rotate_postback_secret(
        &self,
        partner_id: &str,
        secret: &str,
        previous_until: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// The partner with the latest version of each of its templates.
    async fn partner_with_templates(
        &self,
        partner_id: &str,
    ) -> StoreResult<Option<(PartnerRecord, Vec<TemplateRecord>)>>;

    // --- alerts -------------------------------------------------------------------------
    /// Inserts the alert, its first revision and an `alert.created` outbox event in one
    /// transaction, unless an alert with the same (partner, company, extRef) exists.
    async fn create_alert(&self, alert: &NewAlert) -> StoreResult<CreateOutcome>;
    /// Applies a new revision (and an `alert.updated` event) to the targeted alert.
    async fn update_alert(
        &self,
        target: &AlertTarget,
        change: &AlertChange,
    ) -> StoreResult<UpdateOutcome>;
    /// Withdraws the targeted alert at `at` with an `alert.withdrawn` event in one transaction:
    /// it leaves every inbox, takes no more updates and keeps its extRef. Expired alerts not
    /// yet purged can be withdrawn too. A repeat writes nothing.
    async fn withdraw_alert(
        &self,
        target: &WithdrawTarget,
        at: OffsetDateTime,
    ) -> StoreResult<WithdrawOutcome>;
    /// The alert if it belongs to the partner and company, whatever its expiry or withdrawal.
    async fn alert(&self, owner: &AlertOwner, alert_id: &str) -> StoreResult<Option<AlertRecord>>;
    async fn alert_revisions(&self, alert_id: &str) -> StoreResult<Vec<RevisionRecord>>;
    /// Outbox events with an id greater than `after`, oldest first. Nothing deletes outbox
    /// events; a purge, should one come, must keep those past the downstream publisher's cursor
    /// while NATS is configured (`DownstreamStore`).
    async fn outbox_after(&self, after: i64, limit: i64) -> StoreResult<Vec<OutboxEvent>>;
    /// The id of the latest outbox event, 0 when there is none.
    async fn outbox_head(&self) -> StoreResult<i64>;

    // --- the user inbox -----------------------------------------------------------------
    /// A page of the owner's live alerts (see [`InboxQuery`]) and their unread count.
    async fn inbox_page(&self, query: &InboxQuery) -> StoreResult<InboxPage>;
    /// One of the owner's live alerts (not expired at `now`, not dismissed, not withdrawn).
    async fn inbox_item(
        &self,
        owner: &InboxOwner,
        alert_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<InboxItem>>;
    async fn inbox_unread_count(&self, owner: &InboxOwner, now: OffsetDateTime)
    -> StoreResult<i64>;
    /// Marks one of the owner's unexpired, not withdrawn alerts read (at its current revision)
    /// or dismissed, writing `alert.read` / `alert.dismissed` in the same transaction when that
    /// changed anything. `None` when the owner has no such alert; else whether it changed.
    async fn mark_inbox(
        &self,
        owner: &InboxOwner,
        alert_id: &str,
        mark: InboxMark,
        now: OffsetDateTime,
    ) -> StoreResult<Option<bool>>;

    // --- expiry -------------------------------------------------------------------------
    /// Marks up to `limit` alerts whose `expires_at` is at or before `now` as expired, each with
    /// an `alert.expired` event in the same transaction — except withdrawn alerts, whose last
    /// event stays `alert.withdrawn`. Returns how many were marked; 0 when none is due.
    async fn expire_alerts(&self, now: OffsetDateTime, limit: i64) -> StoreResult<u64>;
    /// Deletes up to `limit` alerts (with their revisions) that were marked expired and whose
    /// `expires_at` is at or before `cutoff`, withdrawn or not. Returns how many.
    async fn purge_expired(&self, cutoff: OffsetDateTime, limit: i64) -> StoreResult<u64>;

    // --- company notification subscriptions ---------------------------------------------
    /// True when the subscription is new; subscribing twice keeps one.
    async fn subscribe(&self, subscription: &Subscription) -> StoreResult<bool>;
    /// True when there was a subscription to remove.
    async fn unsubscribe(&self, subscription: &Subscription) -> StoreResult<bool>;
    /// A company's subscriptions, by partner and type.
    async fn subscriptions(&self, company_id: &str) -> StoreResult<Vec<Subscription>>;

    // --- company events -----------------------------------------------------------------
    /// Records the event and, in the same transaction, one pending delivery per subscription
    /// of its company to its type. Returns the deliveries created.
    async fn record_company_event(
        &self,
        event: &NewCompanyEvent,
    ) -> StoreResult<Vec<DeliveryRecord>>;
    /// The deliveries of an event, by id.
    async fn deliveries_of(&self, event_id: &str) -> StoreResult<Vec<DeliveryRecord>>;
    /// The latest snapshot of a trip or profile a company sent with an event, as JSON.
    async fn snapshot(&self, company_id: &str, key: &SnapshotKey) -> StoreResult<Option<String>>;

    // --- delivery -----------------------------------------------------------------------
    /// Claims up to `claim.limit` pending deliveries that are due at `claim.now` and not claimed
    /// by a live lease, oldest due first, for `claimant` until `claim.lease_until`. Two claimants never hold one
    /// delivery at once (PostgreSQL: `FOR UPDATE SKIP LOCKED`). No partner ends up with more
    /// than `per_partner_limit` deliveries under live leases (`lease_until > now`), whoever
    /// holds them, so a partner that never answers cannot take every worker's slots.
    async fn claim_deliveries(
        &self,
        claimant: &str,
        claim: ClaimRequest,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Logs an attempt and, if `claimant` still holds the delivery, moves it on as `next` says
    /// and releases it (`Gone` also ends the subscription), all in one transaction. False when
    /// the claim had been lost: the attempt is logged, the delivery left to its new holder.
    async fn finish_attempt(
        &self,
        claimant: &str,
        delivery_id: &str,
        attempt: &AttemptRecord,
        next: DeliveryNext,
    ) -> StoreResult<bool> {
        let finished = FinishedAttempt {
            delivery_id: delivery_id.to_owned(),
            attempt: attempt.clone(),
            next,
        };
        let kept = self
            .finish_attempts(claimant, std::slice::from_ref(&finished))
            .await?;
        Ok(kept.first().copied().unwrap_or(false))
    }
    /// `finish_attempt` for many attempts of one claimant in one transaction (group commit):
    /// whether each claim was still held, in order.
    async fn finish_attempts(
        &self,
        claimant: &str,
        finished: &[FinishedAttempt],
    ) -> StoreResult<Vec<bool>>;
    /// One step of a delivery worker, in one transaction: records `finished` as
    /// `finish_attempts` does, then claims as `claim_deliveries` does — the room the finished
    /// attempts freed included — and tells when the next delivery not yet due at `claim.now` falls
    /// due (its next attempt, or the lapse of its lease): what an idle worker waits for. Those
    /// already due but held back by their partner's limit do not count, since only an attempt
    /// that ends frees their room; index ranges only, however long the backlog. One commit per
    /// round of attempts rather than two.
    async fn finish_and_claim(
        &self,
        claimant: &str,
        finished: &[FinishedAttempt],
        claim: ClaimRequest,
    ) -> StoreResult<WorkerStep>;
    /// Voids every claim (a single-claimant database after a restart). Returns how many.
    async fn release_claims(&self) -> StoreResult<u64>;
    /// Every registered partner's backlog, those with none included (index ranges only).
    async fn delivery_backlog(&self) -> StoreResult<Vec<DeliveryBacklog>>;
    async fn deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<DeliverySummary>>;
    /// A delivery with every attempt, oldest first.
    async fn delivery(
        &self,
        delivery_id: &str,
    ) -> StoreResult<Option<(DeliverySummary, Vec<AttemptRecord>)>>;
    /// Makes an ended delivery pending again, due at `now`, with the same id.
    async fn replay_delivery(
        &self,
        delivery_id: &str,
        now: time::OffsetDateTime,
    ) -> StoreResult<ReplayOutcome>;
    /// Wakes `wake` whenever another instance records deliveries that are due, until the future
    /// is dropped (PostgreSQL: LISTEN/NOTIFY, reconnecting by itself). Returns at once where
    /// one process owns the database: its own intake wakes its worker directly.
    async fn watch_deliveries(&self, wake: &tokio::sync::Notify) {
        let _ = wake;
    }
    /// False when this database has one claimant only (SQLite: one process owns the file), so a
    /// claim left by a previous run can be voided at start-up instead of waiting for it to lapse.
    fn shared_by_instances(&self) -> bool;
}

pub type DynStore = Arc<dyn Store>;

/// Whether opening a database may create it: only `serve` and `migrate` do, so that a command
/// run in the wrong directory (or with a mistyped URL) says so instead of making an empty one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    CreateIfMissing,
    Existing,
}

/// Opens (creating and migrating where `open` allows) the database a URL names, with its master
/// key (see `key_file`), encrypts the secrets still stored in the clear, and checks that the key
/// opens every stored secret: a wrong key stops start-up, not the first delivery.
pub async fn connect(database: &DatabaseArgs, open: Open) -> anyhow::Result<DynStore> {
    let url = database.url.as_str();
    let store: DynStore = if url.starts_with("sqlite:") {
        let path = sqlite::database_path(url)?;
        match open {
            Open::Existing => sqlite::ensure_exists(&path)?,
            Open::CreateIfMissing => sqlite::ensure_directory(&path)?,
        }
        let secrets = key_file::for_sqlite(database.master_key.as_ref(), &path, open)?;
        Arc::new(sqlite::SqliteStore::connect(&path, database.database_timeout, secrets).await?)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let secrets = key_file::required(database.master_key.as_ref())?;
        Arc::new(postgres::PostgresStore::connect(database, secrets, open).await?)
    } else {
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        anyhow::bail!(
            "the database URL's scheme {scheme:?} is not supported: it is sqlite://PATH or \
             postgres://…"
        )
    };
    store.signing_keys().await?;
    store.partners().await?;
    Ok(store)
}
