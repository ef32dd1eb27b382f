//! Downstream publishing on SQLite: the cursor and lease in `downstream_publishers`, the feeds
//! read from the read pool. One writer commits in id order, so what a reader sees of a feed is
//! final at once.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::{
    SqliteStore,
    rows::{from_millis, millis, parse_ts},
};
use crate::store::{
    CompanyEventRecord, DownstreamAlertEvent, DownstreamCompanyEvent, DownstreamStore, Finality,
    OutboxHorizon, PublishCursor, PublisherClaim, StoreResult,
};

/// The one publisher's row.
const PUBLISHER: &str = "nats";

#[async_trait]
impl DownstreamStore for SqliteStore {
    async fn claim_publisher(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> StoreResult<PublisherClaim> {
        let owner = owner.to_owned();
        self.writer
            .exclusive(move |tx| {
                let taken = tx
                    .prepare_cached(
                        "UPDATE downstream_publishers SET lease_owner = ?1, lease_until_ms = ?2 \
                         WHERE name = ?3 AND (lease_owner IS NULL OR lease_owner = ?1 \
                         OR lease_until_ms <= ?4)",
                    )?
                    .execute(params![owner, millis(lease_until), PUBLISHER, millis(now)])?;
                Ok(PublisherClaim {
                    cursor: cursor(tx)?,
                    held: taken == 1,
                })
            })
            .await
    }

    async fn advance_publisher(
        &self,
        owner: &str,
        cursor: PublishCursor,
        lease_until: OffsetDateTime,
    ) -> StoreResult<bool> {
        let owner = owner.to_owned();
        self.writer
            .exclusive(move |tx| {
                let moved = tx
                    .prepare_cached(
                        "UPDATE downstream_publishers SET \
                         alerts_after = max(alerts_after, ?1), \
                         company_after = max(company_after, ?2), lease_until_ms = ?3 \
                         WHERE name = ?4 AND lease_owner = ?5",
                    )?
                    .execute(params![
                        cursor.alerts_after,
                        cursor.company_after,
                        millis(lease_until),
                        PUBLISHER,
                        owner
                    ])?;
                Ok(moved == 1)
            })
            .await
    }

    async fn release_publisher(&self, owner: Option<&str>) -> StoreResult<()> {
        let owner = owner.map(str::to_owned);
        self.writer
            .exclusive(move |tx| {
                tx.prepare_cached(
                    "UPDATE downstream_publishers SET lease_owner = NULL, lease_until_ms = NULL \
                     WHERE name = ?1 AND (?2 IS NULL OR lease_owner = ?2)",
                )?
                .execute(params![PUBLISHER, owner])?;
                Ok(())
            })
            .await
    }

    async fn outbox_horizon(&self, _beyond: (i64, i64)) -> StoreResult<OutboxHorizon> {
        self.readers
            .read(|db| {
                db.prepare_cached(
                    "SELECT (SELECT COALESCE(MAX(id), 0) FROM outbox), \
                     (SELECT COALESCE(MAX(id), 0) FROM company_outbox)",
                )?
                .query_row([], |row| {
                    Ok(OutboxHorizon {
                        alerts_head: row.get(0)?,
                        company_head: row.get(1)?,
                        finality: Finality::Now,
                        oldest_running: 0,
                    })
                })
            })
            .await
    }

    async fn outbox_between(
        &self,
        after: i64,
        until: i64,
        limit: i64,
    ) -> StoreResult<Vec<DownstreamAlertEvent>> {
        self.readers
            .read(move |db| {
                // Events recorded before the columns existed take them from the alert, if it
                // is still there.
                db.prepare_cached(
                    "SELECT o.id, o.event_type, o.alert_id, o.revision, o.partner_id, \
                     o.company_id, o.user_id, o.occurred_at, \
                     coalesce(o.template_id, a.template_id) AS template_id, \
                     coalesce(o.expires_at, a.expires_at) AS expires_at \
                     FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id \
                     WHERE o.id > ?1 AND o.id <= ?2 ORDER BY o.id LIMIT ?3",
                )?
                .query_map([after, until, limit], alert_event)?
                .collect()
            })
            .await
    }

    async fn company_events_between(
        &self,
        after: i64,
        until: i64,
        limit: i64,
    ) -> StoreResult<Vec<DownstreamCompanyEvent>> {
        self.readers
            .read(move |db| {
                db.prepare_cached(
                    "SELECT q.id AS position, e.id, e.object_type, e.event_type, e.company_id, \
                     e.user_login, e.trip_id, e.occurred_at, e.received_at \
                     FROM company_outbox q JOIN company_events e ON e.id = q.event_id \
                     WHERE q.id > ?1 AND q.id <= ?2 ORDER BY q.id LIMIT ?3",
                )?
                .query_map([after, until, limit], company_event)?
                .collect()
            })
            .await
    }

    async fn oldest_unpublished(
        &self,
        cursor: PublishCursor,
    ) -> StoreResult<Option<OffsetDateTime>> {
        self.readers
            .read(move |db| {
                let alert: Option<Option<i64>> = db
                    .prepare_cached(
                        "SELECT recorded_at FROM outbox WHERE id > ?1 ORDER BY id LIMIT 1",
                    )?
                    .query_row([cursor.alerts_after], |row| row.get(0))
                    .optional()?;
                let company: Option<String> = db
                    .prepare_cached(
                        "SELECT e.received_at FROM company_outbox q \
                         JOIN company_events e ON e.id = q.event_id \
                         WHERE q.id > ?1 ORDER BY q.id LIMIT 1",
                    )?
                    .query_row([cursor.company_after], |row| row.get(0))
                    .optional()?;
                let alert = alert.flatten().map(from_millis).transpose()?;
                let company = company.as_deref().map(parse_ts).transpose()?;
                Ok(alert.into_iter().chain(company).min())
            })
            .await
    }
}

fn cursor(db: &Connection) -> rusqlite::Result<PublishCursor> {
    db.prepare_cached(
        "SELECT alerts_after, company_after FROM downstream_publishers WHERE name = ?1",
    )?
    .query_row([PUBLISHER], |row| {
        Ok(PublishCursor {
            alerts_after: row.get(0)?,
            company_after: row.get(1)?,
        })
    })
}

fn alert_event(row: &Row<'_>) -> rusqlite::Result<DownstreamAlertEvent> {
    Ok(DownstreamAlertEvent {
        event: super::alert_reads::outbox_event(row)?,
        template_id: row.get("template_id")?,
        expires_at: row
            .get::<_, Option<i64>>("expires_at")?
            .map(from_millis)
            .transpose()?,
    })
}

fn company_event(row: &Row<'_>) -> rusqlite::Result<DownstreamCompanyEvent> {
    Ok(DownstreamCompanyEvent {
        position: row.get("position")?,
        event: CompanyEventRecord {
            id: row.get("id")?,
            object_type: row.get("object_type")?,
            event_type: row.get("event_type")?,
            company_id: row.get("company_id")?,
            user_login: row.get("user_login")?,
            trip_id: row.get("trip_id")?,
            occurred_at: parse_ts(&row.get::<_, String>("occurred_at")?)?,
        },
        received_at: parse_ts(&row.get::<_, String>("received_at")?)?,
    })
}
