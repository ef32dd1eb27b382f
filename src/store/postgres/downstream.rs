//! Downstream publishing on PostgreSQL: the cursor and lease in `downstream_publishers` (a
//! conditional `UPDATE`, so two instances never both hold the lease), and the feeds.
//!
//! The horizon. Identity ids are handed out when a row is inserted, not when it commits, so a
//! transaction under way may still commit an id below one already visible. Waiting a grace
//! period for missing ids (as the inbox feed does) could skip an event whose transaction runs
//! long; instead an observation notes the transaction counter (it takes a transaction id of its
//! own, then rolls back) and the heads it sees. Every transaction that took an outbox id below a
//! visible one had taken its own transaction id before — every insert into `outbox` and
//! `company_outbox` follows the transaction's first write — so once a later snapshot's `xmin`
//! is past the noted value, all of them have ended and the heads are final. The price: a
//! transaction left open anywhere in the cluster holds publishing back (the lag gauge shows it).

use async_trait::async_trait;
use sqlx::{Row, postgres::PgRow};
use time::OffsetDateTime;

use super::PostgresStore;
use crate::store::{
    DownstreamAlertEvent, DownstreamCompanyEvent, DownstreamStore, Finality, OutboxHorizon,
    PublishCursor, PublisherClaim, StoreResult,
};

/// The one publisher's row.
const PUBLISHER: &str = "nats";

#[async_trait]
impl DownstreamStore for PostgresStore {
    async fn claim_publisher(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> StoreResult<PublisherClaim> {
        self.timed(async {
            let taken = sqlx::query(
                "UPDATE downstream_publishers SET lease_owner = $1, lease_until = $2 \
                 WHERE name = $3 AND (lease_owner IS NULL OR lease_owner = $1 \
                 OR lease_until <= $4)",
            )
            .bind(owner)
            .bind(lease_until)
            .bind(PUBLISHER)
            .bind(now)
            .execute(&self.pool)
            .await?;
            let (alerts_after, company_after): (i64, i64) = sqlx::query_as(
                "SELECT alerts_after, company_after FROM downstream_publishers WHERE name = $1",
            )
            .bind(PUBLISHER)
            .fetch_one(&self.pool)
            .await?;
            Ok(PublisherClaim {
                cursor: PublishCursor {
                    alerts_after,
                    company_after,
                },
                held: taken.rows_affected() == 1,
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
        self.timed(async {
            let moved = sqlx::query(
                "UPDATE downstream_publishers SET \
                 alerts_after = GREATEST(alerts_after, $1), \
                 company_after = GREATEST(company_after, $2), lease_until = $3 \
                 WHERE name = $4 AND lease_owner = $5",
            )
            .bind(cursor.alerts_after)
            .bind(cursor.company_after)
            .bind(lease_until)
            .bind(PUBLISHER)
            .bind(owner)
            .execute(&self.pool)
            .await?;
            Ok(moved.rows_affected() == 1)
        })
        .await
    }

    async fn release_publisher(&self, owner: Option<&str>) -> StoreResult<()> {
        self.timed(async {
            sqlx::query(
                "UPDATE downstream_publishers SET lease_owner = NULL, lease_until = NULL \
                 WHERE name = $1 AND ($2::text IS NULL OR lease_owner = $2)",
            )
            .bind(PUBLISHER)
            .bind(owner)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn outbox_horizon(&self, beyond: (i64, i64)) -> StoreResult<OutboxHorizon> {
        self.timed(async {
            // The transaction id taken here is the counter's value now; rolling back ends it
            // without a commit record to flush. It is taken only for heads past `beyond`.
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query(
                "WITH heads AS (SELECT \
                 (SELECT COALESCE(MAX(id), 0) FROM outbox) AS alerts_head, \
                 (SELECT COALESCE(MAX(id), 0) FROM company_outbox) AS company_head) \
                 SELECT alerts_head, company_head, \
                 pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS oldest_running, \
                 CASE WHEN alerts_head > $1 OR company_head > $2 \
                 THEN pg_current_xact_id()::text::bigint END AS counter FROM heads",
            )
            .bind(beyond.0)
            .bind(beyond.1)
            .fetch_one(&mut *tx)
            .await?;
            tx.rollback().await?;
            let counter: Option<i64> = row.try_get("counter")?;
            Ok(OutboxHorizon {
                alerts_head: row.try_get("alerts_head")?,
                company_head: row.try_get("company_head")?,
                finality: counter.map_or(Finality::Unknown, |c| Finality::After(c as u64)),
                oldest_running: row.try_get::<i64, _>("oldest_running")? as u64,
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
        self.timed(async {
            // Events recorded before the columns existed take them from the alert, if it is
            // still there.
            let rows = sqlx::query(
                "SELECT o.id, o.event_type, o.alert_id, o.revision, o.partner_id, o.company_id, \
                 o.user_id, o.occurred_at, \
                 COALESCE(o.template_id, a.template_id) AS template_id, \
                 COALESCE(o.expires_at, a.expires_at) AS expires_at \
                 FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id \
                 WHERE o.id > $1 AND o.id <= $2 ORDER BY o.id LIMIT $3",
            )
            .bind(after)
            .bind(until)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(alert_event).collect()
        })
        .await
    }

    async fn company_events_between(
        &self,
        after: i64,
        until: i64,
        limit: i64,
    ) -> StoreResult<Vec<DownstreamCompanyEvent>> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT q.id AS position, e.id, e.object_type, e.event_type, e.company_id, \
                 e.user_login, e.trip_id, e.occurred_at, e.received_at \
                 FROM company_outbox q JOIN company_events e ON e.id = q.event_id \
                 WHERE q.id > $1 AND q.id <= $2 ORDER BY q.id LIMIT $3",
            )
            .bind(after)
            .bind(until)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(company_event).collect()
        })
        .await
    }

    async fn oldest_unpublished(
        &self,
        cursor: PublishCursor,
    ) -> StoreResult<Option<OffsetDateTime>> {
        self.timed(async {
            sqlx::query_scalar(
                "SELECT LEAST( \
                 (SELECT recorded_at FROM outbox WHERE id > $1 ORDER BY id LIMIT 1), \
                 (SELECT e.received_at FROM company_outbox q \
                  JOIN company_events e ON e.id = q.event_id \
                  WHERE q.id > $2 ORDER BY q.id LIMIT 1))",
            )
            .bind(cursor.alerts_after)
            .bind(cursor.company_after)
            .fetch_one(&self.pool)
            .await
        })
        .await
    }
}

fn alert_event(row: &PgRow) -> Result<DownstreamAlertEvent, sqlx::Error> {
    Ok(DownstreamAlertEvent {
        event: super::alerts::outbox_event(row)?,
        template_id: row.try_get("template_id")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn company_event(row: &PgRow) -> Result<DownstreamCompanyEvent, sqlx::Error> {
    Ok(DownstreamCompanyEvent {
        position: row.try_get("position")?,
        event: super::events::record_of(row, "id")?,
        received_at: row.try_get("received_at")?,
    })
}
