//! The inbox beyond a page and a mark, on SQLite: a user's events for a resumed stream, snooze
//! and its end, read-all (each change with its outbox events, in one transaction through the
//! writer), and the [`InboxStore`] methods, sessions included (`inbox_sessions.rs`).

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use super::{
    SqliteStore,
    alert_reads::outbox_event,
    alerts::announce,
    inbox::{AWAKE, LIVE, UNREAD},
    inbox_sessions,
    rows::{from_millis, millis},
};
use crate::store::{
    AlertOwner, EVENT_ALERT_READ, EVENT_ALERT_SNOOZED, EVENT_ALERT_UNSNOOZED, InboxOwner,
    InboxSession, InboxStore, OutboxEvent, SnoozeOutcome, StoreResult,
};

#[async_trait]
impl InboxStore for SqliteStore {
    async fn inbox_events_after(
        &self,
        owner: &InboxOwner,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<OutboxEvent>> {
        let owner = owner.clone();
        self.readers
            .read(move |db| events_after(db, &owner, after, limit))
            .await
    }

    async fn outbox_ids_after(&self, after: i64, limit: i64) -> StoreResult<Vec<i64>> {
        self.readers
            .read(move |db| {
                db.prepare_cached("SELECT id FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2")?
                    .query_map([after, limit], |row| row.get(0))?
                    .collect()
            })
            .await
    }

    async fn snooze_inbox(
        &self,
        owner: &InboxOwner,
        alert_id: &str,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<SnoozeOutcome> {
        let (owner, alert_id) = (owner.clone(), alert_id.to_owned());
        self.writer
            .exclusive(move |tx| snooze(tx, &owner, &alert_id, until, now))
            .await
    }

    async fn read_all_inbox(&self, owner: &InboxOwner, now: OffsetDateTime) -> StoreResult<u64> {
        let owner = owner.clone();
        self.writer
            .exclusive(move |tx| read_all(tx, &owner, now))
            .await
    }

    async fn wake_snoozed(&self, now: OffsetDateTime, limit: i64) -> StoreResult<u64> {
        self.writer.exclusive(move |tx| wake(tx, now, limit)).await
    }

    async fn create_inbox_session(
        &self,
        session: &InboxSession,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let session = session.clone();
        self.writer
            .exclusive(move |tx| inbox_sessions::create(tx, &session, now))
            .await
    }

    async fn inbox_session(
        &self,
        digest: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<InboxSession>> {
        let digest = digest.to_owned();
        self.readers
            .read(move |db| inbox_sessions::find(db, &digest, now))
            .await
    }

    async fn end_inbox_session(&self, digest: &str, now: OffsetDateTime) -> StoreResult<bool> {
        let digest = digest.to_owned();
        self.writer
            .exclusive(move |tx| inbox_sessions::end(tx, &digest, now))
            .await
    }

    async fn use_sign_in_link(&self, jti: &str, expires_at: OffsetDateTime) -> StoreResult<bool> {
        let jti = jti.to_owned();
        self.writer
            .exclusive(move |tx| inbox_sessions::use_link(tx, &jti, expires_at))
            .await
    }

    async fn purge_inbox_sessions(&self, now: OffsetDateTime) -> StoreResult<u64> {
        self.writer
            .exclusive(move |tx| inbox_sessions::purge(tx, now))
            .await
    }
}

fn events_after(
    db: &Connection,
    owner: &InboxOwner,
    after: i64,
    limit: i64,
) -> rusqlite::Result<Vec<OutboxEvent>> {
    db.prepare_cached(
        "SELECT id, event_type, alert_id, revision, partner_id, company_id, user_id, occurred_at \
         FROM outbox INDEXED BY outbox_by_user \
         WHERE company_id = ?1 AND user_id = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
    )?
    .query_map(
        params![owner.company_id, owner.user_id, after, limit],
        outbox_event,
    )?
    .collect()
}

fn snooze(
    db: &Connection,
    owner: &InboxOwner,
    alert_id: &str,
    until: OffsetDateTime,
    now: OffsetDateTime,
) -> rusqlite::Result<SnoozeOutcome> {
    type Current = (String, i64, i64, Option<i64>, Option<i64>);
    let current: Option<Current> = db
        .prepare_cached(&format!(
            "SELECT a.partner_id, a.revision, a.expires_at, a.read_revision, a.snoozed_until \
             FROM alerts a WHERE {LIVE} AND a.id = ?4"
        ))?
        .query_row(
            params![owner.company_id, owner.user_id, millis(now), alert_id],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )
        .optional()?;
    let Some((partner_id, revision, expires_at, read_revision, snoozed_until)) = current else {
        return Ok(SnoozeOutcome::NotFound);
    };
    let until_ms = millis(until);
    if expires_at <= until_ms {
        return Ok(SnoozeOutcome::PastExpiry {
            expires_at: from_millis(expires_at)?,
        });
    }
    if snoozed_until == Some(until_ms) && read_revision.is_none() {
        return Ok(SnoozeOutcome::Snoozed { changed: false });
    }
    // Unread from now on, so that it comes back unread when the snooze ends.
    db.prepare_cached("UPDATE alerts SET snoozed_until = ?1, read_revision = NULL WHERE id = ?2")?
        .execute(params![until_ms, alert_id])?;
    let alert_owner = AlertOwner {
        partner_id,
        company_id: owner.company_id.clone(),
    };
    announce(
        db,
        EVENT_ALERT_SNOOZED,
        alert_id,
        revision,
        &alert_owner,
        &owner.user_id,
        now,
    )?;
    Ok(SnoozeOutcome::Snoozed { changed: true })
}

fn read_all(db: &Connection, owner: &InboxOwner, now: OffsetDateTime) -> rusqlite::Result<u64> {
    let unread: Vec<(String, String, i64)> = db
        .prepare_cached(&format!(
            "SELECT a.id, a.partner_id, a.revision FROM alerts a \
             WHERE {LIVE} AND {AWAKE} AND {UNREAD} ORDER BY a.id"
        ))?
        .query_map(
            params![owner.company_id, owner.user_id, millis(now)],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let mut mark = db.prepare_cached("UPDATE alerts SET read_revision = revision WHERE id = ?1")?;
    for (alert_id, partner_id, revision) in &unread {
        mark.execute([alert_id])?;
        let alert_owner = AlertOwner {
            partner_id: partner_id.clone(),
            company_id: owner.company_id.clone(),
        };
        announce(
            db,
            EVENT_ALERT_READ,
            alert_id,
            *revision,
            &alert_owner,
            &owner.user_id,
            now,
        )?;
    }
    Ok(unread.len() as u64)
}

/// Ends the snoozes due at `now`, oldest first; each event is dated when its snooze ended.
fn wake(db: &Connection, now: OffsetDateTime, limit: i64) -> rusqlite::Result<u64> {
    type Due = (String, i64, String, String, String, i64, bool);
    let due: Vec<Due> = db
        .prepare_cached(
            "SELECT id, revision, partner_id, company_id, user_id, snoozed_until, \
             expires_at > ?1 AND dismissed_at IS NULL AND withdrawn_at IS NULL FROM alerts \
             WHERE snoozed_until IS NOT NULL AND snoozed_until <= ?1 \
             ORDER BY snoozed_until LIMIT ?2",
        )?
        .query_map(params![millis(now), limit], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut clear = db.prepare_cached("UPDATE alerts SET snoozed_until = NULL WHERE id = ?1")?;
    for (alert_id, revision, partner_id, company_id, user_id, until, live) in &due {
        clear.execute([alert_id])?;
        if !live {
            continue;
        }
        let owner = AlertOwner {
            partner_id: partner_id.clone(),
            company_id: company_id.clone(),
        };
        announce(
            db,
            EVENT_ALERT_UNSNOOZED,
            alert_id,
            *revision,
            &owner,
            user_id,
            from_millis(*until)?,
        )?;
    }
    Ok(due.len() as u64)
}
