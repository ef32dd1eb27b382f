//! The inbox beyond a page and a mark, on PostgreSQL: a user's events for a resumed stream,
//! snooze and its end, read-all (each change with its outbox events, in one transaction), and
//! the [`InboxStore`] methods, sessions included (`inbox_sessions.rs`). Changes lock their rows,
//! so a snooze or a read-all takes turns with a partner's update of the same alert; sweepers of
//! several instances skip each other's rows (`SKIP LOCKED`).

use async_trait::async_trait;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{
    PostgresStore,
    alerts::announce,
    inbox::{AWAKE, LIVE, UNREAD},
    inbox_sessions, outbox_signal,
};
use crate::store::{
    AlertOwner, EVENT_ALERT_READ, EVENT_ALERT_SNOOZED, EVENT_ALERT_UNSNOOZED, InboxOwner,
    InboxSession, InboxStore, OutboxEvent, OutboxSignal, SnoozeOutcome, StoreResult,
};

#[async_trait]
impl InboxStore for PostgresStore {
    async fn inbox_events_after(
        &self,
        owner: &InboxOwner,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<OutboxEvent>> {
        self.timed(events_after(&self.pool, owner, after, limit))
            .await
    }

    async fn outbox_ids_after(&self, after: i64, limit: i64) -> StoreResult<Vec<i64>> {
        self.timed(
            sqlx::query_scalar("SELECT id FROM outbox WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool),
        )
        .await
    }

    async fn snooze_inbox(
        &self,
        owner: &InboxOwner,
        alert_id: &str,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<SnoozeOutcome> {
        self.timed(snooze(&self.pool, owner, alert_id, until, now))
            .await
    }

    async fn read_all_inbox(&self, owner: &InboxOwner, now: OffsetDateTime) -> StoreResult<u64> {
        self.timed(read_all(&self.pool, owner, now)).await
    }

    async fn wake_snoozed(&self, now: OffsetDateTime, limit: i64) -> StoreResult<u64> {
        self.timed(wake(&self.pool, now, limit)).await
    }

    async fn create_inbox_session(
        &self,
        session: &InboxSession,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        self.timed(inbox_sessions::create(&self.pool, session, now))
            .await
    }

    async fn inbox_session(
        &self,
        digest: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<InboxSession>> {
        self.timed(inbox_sessions::find(&self.pool, digest, now))
            .await
    }

    async fn end_inbox_session(&self, digest: &str, now: OffsetDateTime) -> StoreResult<bool> {
        self.timed(inbox_sessions::end(&self.pool, digest, now))
            .await
    }

    async fn use_sign_in_link(&self, jti: &str, expires_at: OffsetDateTime) -> StoreResult<bool> {
        self.timed(inbox_sessions::use_link(&self.pool, jti, expires_at))
            .await
    }

    async fn purge_inbox_sessions(&self, now: OffsetDateTime) -> StoreResult<u64> {
        self.timed(inbox_sessions::purge(&self.pool, now)).await
    }

    async fn outbox_signal(&self) -> Option<Box<dyn OutboxSignal>> {
        let signal = outbox_signal::Listener::start(
            self.options.clone(),
            self.timeout,
            outbox_signal::OUTBOX,
            "inbox feed",
        )
        .await;
        Some(Box::new(signal))
    }
}

async fn events_after(
    pool: &PgPool,
    owner: &InboxOwner,
    after: i64,
    limit: i64,
) -> Result<Vec<OutboxEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, event_type, alert_id, revision, partner_id, company_id, user_id, occurred_at \
         FROM outbox WHERE company_id = $1 AND user_id = $2 AND id > $3 ORDER BY id LIMIT $4",
    )
    .bind(&owner.company_id)
    .bind(&owner.user_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(super::alerts::outbox_event).collect()
}

async fn snooze(
    pool: &PgPool,
    owner: &InboxOwner,
    alert_id: &str,
    until: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<SnoozeOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    type Current = (
        String,
        i64,
        OffsetDateTime,
        Option<i64>,
        Option<OffsetDateTime>,
    );
    let current: Option<Current> = sqlx::query_as(&format!(
        "SELECT a.partner_id, a.revision, a.expires_at, a.read_revision, a.snoozed_until \
         FROM alerts a WHERE {LIVE} AND a.id = $4 FOR UPDATE"
    ))
    .bind(&owner.company_id)
    .bind(&owner.user_id)
    .bind(now)
    .bind(alert_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((partner_id, revision, expires_at, read_revision, snoozed_until)) = current else {
        tx.rollback().await?;
        return Ok(SnoozeOutcome::NotFound);
    };
    if expires_at <= until {
        tx.rollback().await?;
        return Ok(SnoozeOutcome::PastExpiry { expires_at });
    }
    if snoozed_until == Some(until) && read_revision.is_none() {
        tx.rollback().await?;
        return Ok(SnoozeOutcome::Snoozed { changed: false });
    }
    // Unread from now on, so that it comes back unread when the snooze ends.
    sqlx::query("UPDATE alerts SET snoozed_until = $1, read_revision = NULL WHERE id = $2")
        .bind(until)
        .bind(alert_id)
        .execute(&mut *tx)
        .await?;
    let alert_owner = AlertOwner {
        partner_id,
        company_id: owner.company_id.clone(),
    };
    announce(
        &mut tx,
        EVENT_ALERT_SNOOZED,
        alert_id,
        revision,
        &alert_owner,
        &owner.user_id,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(SnoozeOutcome::Snoozed { changed: true })
}

async fn read_all(
    pool: &PgPool,
    owner: &InboxOwner,
    now: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    // Rows are locked in id order (so that two read-alls never deadlock) and the UPDATE checks
    // the row again once locked, so an alert a partner updated meanwhile is judged as it is now.
    let marked: i64 = sqlx::query_scalar(&format!(
        "WITH unread AS ( \
             SELECT a.id FROM alerts a WHERE {LIVE} AND {AWAKE} AND {UNREAD} \
             ORDER BY a.id FOR UPDATE), \
         marked AS ( \
             UPDATE alerts a SET read_revision = a.revision FROM unread \
             WHERE a.id = unread.id AND {UNREAD} \
             RETURNING a.id, a.revision, a.partner_id), \
         announced AS ( \
             INSERT INTO outbox (event_type, alert_id, revision, partner_id, company_id, \
                 user_id, occurred_at) \
             SELECT '{EVENT_ALERT_READ}', id, revision, partner_id, $1, $2, $3 \
             FROM marked ORDER BY id) \
         SELECT COUNT(*) FROM marked"
    ))
    .bind(&owner.company_id)
    .bind(&owner.user_id)
    .bind(now)
    .fetch_one(pool)
    .await?;
    Ok(marked as u64)
}

/// Ends the snoozes due at `now`, oldest first; each event is dated when its snooze ended.
async fn wake(pool: &PgPool, now: OffsetDateTime, limit: i64) -> Result<u64, sqlx::Error> {
    let woken: i64 = sqlx::query_scalar(&format!(
        "WITH due AS ( \
             SELECT id, snoozed_until AS until FROM alerts \
             WHERE snoozed_until IS NOT NULL AND snoozed_until <= $1 \
             ORDER BY snoozed_until LIMIT $2 FOR UPDATE SKIP LOCKED), \
         woken AS ( \
             UPDATE alerts a SET snoozed_until = NULL FROM due WHERE a.id = due.id \
             RETURNING a.id, a.revision, a.partner_id, a.company_id, a.user_id, due.until, \
             (a.expires_at > $1 AND a.dismissed_at IS NULL AND a.withdrawn_at IS NULL) AS live), \
         announced AS ( \
             INSERT INTO outbox (event_type, alert_id, revision, partner_id, company_id, \
                 user_id, occurred_at) \
             SELECT '{EVENT_ALERT_UNSNOOZED}', id, revision, partner_id, company_id, user_id, \
                 until \
             FROM woken WHERE live ORDER BY until, id) \
         SELECT COUNT(*) FROM woken"
    ))
    .bind(now)
    .bind(limit)
    .fetch_one(pool)
    .await?;
    Ok(woken as u64)
}
