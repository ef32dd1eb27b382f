//! PostgreSQL, for several `maestro` instances sharing one database.
//!
//! Nothing here keeps state another instance needs: uniqueness is decided by constraints
//! (`ON CONFLICT`), updates lock their row (`FOR UPDATE`), and migrations run under sqlx's
//! advisory lock, so instances starting together migrate the database once.
//!
//! Timeouts: the pool's acquire timeout and the server-side `statement_timeout` both equal
//! `MAESTRO_DATABASE_TIMEOUT`; either running out is a 504.

mod alert_writes;
mod alerts;
mod app_center;
mod batch;
mod call;
mod catalog;
mod claims;
mod connect;
mod deliveries;
mod downstream;
mod events;
mod inbox;
mod inbox_actions;
mod inbox_sessions;
mod json;
mod keys;
mod outbox_signal;
mod queue_upkeep;
mod refresh_tokens;
mod subscriptions;
mod wakeups;
mod withdrawal;
mod worker_lag;

use std::{future::Future, time::Duration};

use async_trait::async_trait;
use sqlx::{PgPool, postgres::PgConnectOptions};

use time::OffsetDateTime;

use super::{
    AlertChange, AlertOwner, AlertRecord, AlertTarget, CreateOutcome, ImportReport, InboxItem,
    InboxMark, InboxOwner, InboxPage, InboxQuery, NewAlert, Open, OutboxEvent, PartnerImport,
    PartnerRecord, RetireOutcome, RevisionRecord, SigningKeyRecord, Store, StoreResult,
    Subscription, TemplateRecord, UpdateOutcome, WithdrawOutcome, WithdrawTarget,
    delivery_types::{
        AttemptRecord, ClaimRequest, ClaimedDelivery, DeliveryBacklog, DeliveryFilter,
        DeliveryRecord, DeliverySummary, FinishedAttempt, NewCompanyEvent, ReplayOutcome,
        SnapshotKey, WorkerStep,
    },
    secrets::{Column, Secrets},
};
use crate::config::DatabaseArgs;
use call::timed;

pub struct PostgresStore {
    pool: PgPool,
    /// How the pool connects: the outbox signal's connection of its own connects the same way.
    options: PgConnectOptions,
    timeout: Duration,
    /// Seals the secrets on their way in, opens them on their way out.
    secrets: Secrets,
    /// Tells the other instances' workers of deliveries recorded here.
    announcer: wakeups::Announcer,
    /// Commits alert writes and company events in batches.
    batcher: batch::Batcher,
    /// Vacuums the delivery queue every so many outcomes.
    upkeep: queue_upkeep::QueueUpkeep,
}

impl PostgresStore {
    /// Connects, migrates (unless `open` forbids making the schema), and seals the secrets
    /// still stored in the clear.
    pub async fn connect(
        database: &DatabaseArgs,
        secrets: Secrets,
        open: Open,
    ) -> anyhow::Result<Self> {
        let timeout = database.database_timeout;
        let (pool, options) = connect::pool(database, open).await?;
        let sealed = keys::seal_plaintext(&pool, &secrets).await?;
        if sealed > 0 {
            tracing::info!(sealed, "encrypted the secrets stored in the clear");
        }
        // What earlier runs left dead in the delivery queue, before the workers claim from it.
        // Not fatal: a failure (a queue too long to vacuum within the timeout) only leaves it to
        // the workers' first round.
        if let Err(err) = timed(timeout, queue_upkeep::vacuum(&pool)).await {
            tracing::warn!(error = %err, "could not vacuum the delivery queue");
        }
        let batcher = batch::Batcher::start(pool.clone(), timeout);
        Ok(PostgresStore {
            announcer: wakeups::Announcer::start(pool.clone()),
            pool,
            options,
            timeout,
            secrets,
            batcher,
            upkeep: queue_upkeep::QueueUpkeep::default(),
        })
    }

    /// Runs one database call under the configured timeout, translating its failure. The
    /// client-side deadline is a little longer than `statement_timeout`, so that the server
    /// cancels first and the connection comes back clean.
    async fn timed<T>(&self, call: impl Future<Output = Result<T, sqlx::Error>>) -> StoreResult<T> {
        timed(self.timeout, call).await
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        self.timed(async {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let sealed = self.timed(keys::signing_keys(&self.pool)).await?;
        Ok(self.secrets.open_keys(sealed)?)
    }

    async fn add_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool> {
        let key = self.secrets.seal_key(key);
        self.timed(keys::add_first_signing_key(&self.pool, &key))
            .await
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()> {
        let key = self.secrets.seal_key(key);
        self.timed(keys::add_signing_key(&self.pool, &key)).await
    }

    async fn record_signed_until(&self, kid: &str, until: OffsetDateTime) -> StoreResult<bool> {
        self.timed(keys::record_signed_until(&self.pool, kid, until))
            .await
    }

    async fn retire_signing_key(
        &self,
        kid: &str,
        at: OffsetDateTime,
        expired_before: OffsetDateTime,
        force: bool,
    ) -> StoreResult<RetireOutcome> {
        self.timed(keys::retire_signing_key(
            &self.pool,
            kid,
            at,
            expired_before,
            force,
        ))
        .await
    }

    async fn partner_count(&self) -> StoreResult<i64> {
        self.timed(async {
            sqlx::query_scalar("SELECT COUNT(*) FROM partners")
                .fetch_one(&self.pool)
                .await
        })
        .await
    }

    async fn import_partner(&self, import: &PartnerImport) -> StoreResult<ImportReport> {
        let import = self.secrets.seal_import(import);
        self.timed(catalog::import_partner(&self.pool, &import))
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
        self.timed(catalog::rotate_postback_secret(
            &self.pool,
            partner_id,
            &sealed,
            previous_until,
        ))
        .await
    }

    async fn partners(&self) -> StoreResult<Vec<PartnerRecord>> {
        let sealed = self.timed(catalog::partners(&self.pool)).await?;
        Ok(self.secrets.open_partners(sealed)?)
    }

    async fn partner_with_templates(
        &self,
        partner_id: &str,
    ) -> StoreResult<Option<(PartnerRecord, Vec<TemplateRecord>)>> {
        let found = self
            .timed(catalog::partner_with_templates(&self.pool, partner_id))
            .await?;
        let Some((partner, templates)) = found else {
            return Ok(None);
        };
        Ok(Some((self.secrets.open_partner(partner)?, templates)))
    }

    async fn create_alert(&self, alert: &NewAlert) -> StoreResult<CreateOutcome> {
        self.batcher.create(alert).await
    }

    async fn update_alert(
        &self,
        target: &AlertTarget,
        change: &AlertChange,
    ) -> StoreResult<UpdateOutcome> {
        self.batcher.update(target, change).await
    }

    async fn withdraw_alert(
        &self,
        target: &WithdrawTarget,
        at: OffsetDateTime,
    ) -> StoreResult<WithdrawOutcome> {
        self.timed(withdrawal::withdraw(&self.pool, target, at))
            .await
    }

    async fn alert(&self, owner: &AlertOwner, alert_id: &str) -> StoreResult<Option<AlertRecord>> {
        self.timed(alerts::find(&self.pool, owner, alert_id)).await
    }

    async fn alert_revisions(&self, alert_id: &str) -> StoreResult<Vec<RevisionRecord>> {
        self.timed(alerts::revisions(&self.pool, alert_id)).await
    }

    async fn outbox_after(&self, after: i64, limit: i64) -> StoreResult<Vec<OutboxEvent>> {
        self.timed(alerts::outbox_after(&self.pool, after, limit))
            .await
    }

    async fn outbox_head(&self) -> StoreResult<i64> {
        self.timed(alerts::outbox_head(&self.pool)).await
    }

    async fn inbox_page(&self, query: &InboxQuery) -> StoreResult<InboxPage> {
        self.timed(inbox::page(&self.pool, query)).await
    }

    async fn inbox_item(
        &self,
        owner: &InboxOwner,
        alert_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<InboxItem>> {
        self.timed(inbox::find(&self.pool, owner, alert_id, now))
            .await
    }

    async fn inbox_unread_count(
        &self,
        owner: &InboxOwner,
        now: OffsetDateTime,
    ) -> StoreResult<i64> {
        self.timed(inbox::unread_count(&self.pool, owner, now))
            .await
    }

    async fn mark_inbox(
        &self,
        owner: &InboxOwner,
        alert_id: &str,
        mark: InboxMark,
        now: OffsetDateTime,
    ) -> StoreResult<Option<bool>> {
        self.timed(inbox::mark(&self.pool, owner, alert_id, mark, now))
            .await
    }

    async fn expire_alerts(&self, now: OffsetDateTime, limit: i64) -> StoreResult<u64> {
        self.timed(inbox::expire(&self.pool, now, limit)).await
    }

    async fn purge_expired(&self, cutoff: OffsetDateTime, limit: i64) -> StoreResult<u64> {
        self.timed(inbox::purge(&self.pool, cutoff, limit)).await
    }

    async fn subscribe(&self, subscription: &Subscription) -> StoreResult<bool> {
        self.timed(subscriptions::subscribe(&self.pool, subscription))
            .await
    }

    async fn unsubscribe(&self, subscription: &Subscription) -> StoreResult<bool> {
        self.timed(subscriptions::unsubscribe(&self.pool, subscription))
            .await
    }

    async fn subscriptions(&self, company_id: &str) -> StoreResult<Vec<Subscription>> {
        self.timed(subscriptions::of_company(&self.pool, company_id))
            .await
    }

    async fn record_company_event(
        &self,
        event: &NewCompanyEvent,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let deliveries = self.batcher.record_event(event).await?;
        if !deliveries.is_empty() {
            self.announcer.announce();
        }
        Ok(deliveries)
    }

    async fn deliveries_of(&self, event_id: &str) -> StoreResult<Vec<DeliveryRecord>> {
        self.timed(events::of_event(&self.pool, event_id)).await
    }

    async fn snapshot(&self, company_id: &str, key: &SnapshotKey) -> StoreResult<Option<String>> {
        self.timed(events::snapshot(&self.pool, company_id, key))
            .await
    }

    async fn claim_deliveries(
        &self,
        claimant: &str,
        claim: ClaimRequest,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let sealed = self
            .timed(claims::claim(&self.pool, claimant, claim))
            .await?;
        Ok(self.secrets.open_claims(sealed)?)
    }

    async fn finish_attempts(
        &self,
        claimant: &str,
        finished: &[FinishedAttempt],
    ) -> StoreResult<Vec<bool>> {
        let kept = self
            .timed(claims::finish_all(&self.pool, claimant, finished))
            .await?;
        self.upkeep
            .recorded(&self.pool, self.timeout, finished.len());
        Ok(kept)
    }

    async fn finish_and_claim(
        &self,
        claimant: &str,
        finished: &[FinishedAttempt],
        claim: ClaimRequest,
    ) -> StoreResult<WorkerStep> {
        let mut step = self
            .timed(claims::finish_and_claim(
                &self.pool, claimant, finished, claim,
            ))
            .await?;
        self.upkeep
            .recorded(&self.pool, self.timeout, finished.len());
        step.claimed = self.secrets.open_claims(step.claimed)?;
        Ok(step)
    }

    async fn release_claims(&self) -> StoreResult<u64> {
        self.timed(claims::release_claims(&self.pool)).await
    }

    async fn delivery_backlog(&self) -> StoreResult<Vec<DeliveryBacklog>> {
        self.timed(deliveries::backlog(&self.pool)).await
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<DeliverySummary>> {
        self.timed(deliveries::list(&self.pool, filter)).await
    }

    async fn delivery(
        &self,
        delivery_id: &str,
    ) -> StoreResult<Option<(DeliverySummary, Vec<AttemptRecord>)>> {
        self.timed(deliveries::find(&self.pool, delivery_id)).await
    }

    async fn replay_delivery(
        &self,
        delivery_id: &str,
        now: time::OffsetDateTime,
    ) -> StoreResult<ReplayOutcome> {
        let outcome = self
            .timed(deliveries::replay(&self.pool, delivery_id, now))
            .await?;
        if outcome == ReplayOutcome::Replayed {
            self.announcer.announce();
        }
        Ok(outcome)
    }

    async fn watch_deliveries(&self, wake: &tokio::sync::Notify) {
        use crate::store::OutboxSignal;
        let mut listener = outbox_signal::Listener::start(
            self.options.clone(),
            self.timeout,
            wakeups::CHANNEL,
            "delivery worker",
        )
        .await;
        // What was announced before it listened was not heard; each reconnection says so too.
        wake.notify_one();
        loop {
            listener.changed().await;
            wake.notify_one();
        }
    }

    fn shared_by_instances(&self) -> bool {
        true
    }
}
