//! Deliveries as an administrator sees them: the backlog, the list, one delivery with its
//! attempts, and replays. The workers' side is `claims.rs`.

use sqlx::{PgPool, Row, postgres::PgRow};
use time::OffsetDateTime;

use crate::store::{
    AttemptRecord, DELIVERY_PENDING, DeliveryBacklog, DeliveryFilter, DeliverySummary,
    ReplayOutcome,
};

pub(super) async fn backlog(pool: &PgPool) -> Result<Vec<DeliveryBacklog>, sqlx::Error> {
    // Per partner, an index range of `delivery_queue_by_partner`.
    let rows = sqlx::query(
        "SELECT p.id, count(q.delivery_id) AS pending, min(q.next_attempt_at) AS oldest \
         FROM partners p LEFT JOIN delivery_queue q ON q.partner_id = p.id \
         GROUP BY p.id ORDER BY p.id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DeliveryBacklog {
                partner_id: row.try_get("id")?,
                pending: row.try_get("pending")?,
                oldest_next_attempt: row.try_get("oldest")?,
            })
        })
        .collect()
}

const SUMMARY: &str = "SELECT d.id, d.event_id, d.partner_id, e.company_id, e.object_type, \
     e.event_type, d.status, d.attempts, d.next_attempt_at, d.last_status, d.last_error, \
     d.created_at, d.updated_at FROM deliveries d JOIN company_events e ON e.id = d.event_id";

fn summary(row: &PgRow) -> Result<DeliverySummary, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let next_attempt_at: OffsetDateTime = row.try_get("next_attempt_at")?;
    Ok(DeliverySummary {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        partner_id: row.try_get("partner_id")?,
        company_id: row.try_get("company_id")?,
        object_type: row.try_get("object_type")?,
        event_type: row.try_get("event_type")?,
        next_attempt_at: (status == DELIVERY_PENDING).then_some(next_attempt_at),
        status,
        attempts: row.try_get("attempts")?,
        last_status: row.try_get::<Option<i32>, _>("last_status")?.map(i64::from),
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) async fn list(
    pool: &PgPool,
    filter: &DeliveryFilter,
) -> Result<Vec<DeliverySummary>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "{SUMMARY} WHERE ($1::text IS NULL OR d.status = $1) \
         AND ($2::text IS NULL OR d.partner_id = $2) ORDER BY d.created_at DESC, d.id DESC \
         LIMIT $3"
    ))
    .bind(&filter.status)
    .bind(&filter.partner_id)
    .bind(filter.limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(summary).collect()
}

pub(super) async fn find(
    pool: &PgPool,
    delivery_id: &str,
) -> Result<Option<(DeliverySummary, Vec<AttemptRecord>)>, sqlx::Error> {
    let Some(row) = sqlx::query(&format!("{SUMMARY} WHERE d.id = $1"))
        .bind(delivery_id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let delivery = summary(&row)?;
    let attempts = sqlx::query(
        "SELECT attempt, started_at, duration_ms, status_code, error, response_body, outcome \
         FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id",
    )
    .bind(delivery_id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(AttemptRecord {
            attempt: row.try_get("attempt")?,
            started_at: row.try_get("started_at")?,
            duration_ms: row.try_get("duration_ms")?,
            status_code: row.try_get::<Option<i32>, _>("status_code")?.map(i64::from),
            error: row.try_get("error")?,
            response_body: row.try_get("response_body")?,
            outcome: row.try_get("outcome")?,
        })
    })
    .collect::<Result<_, sqlx::Error>>()?;
    Ok(Some((delivery, attempts)))
}

pub(super) async fn replay(
    pool: &PgPool,
    delivery_id: &str,
    now: OffsetDateTime,
) -> Result<ReplayOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM deliveries WHERE id = $1 FOR UPDATE")
            .bind(delivery_id)
            .fetch_optional(&mut *tx)
            .await?;
    let outcome = match status.as_deref() {
        None => ReplayOutcome::NotFound,
        Some(DELIVERY_PENDING) => ReplayOutcome::StillPending,
        Some(_) => {
            // A replay queues the delivery afresh: no lease may hold it back (none should
            // outlive an outcome; this makes sure).
            sqlx::query(
                "WITH released AS (DELETE FROM delivery_leases WHERE delivery_id = $2), \
                 queued AS (INSERT INTO delivery_queue (delivery_id, partner_id, \
                   next_attempt_at) SELECT id, partner_id, $1 FROM deliveries WHERE id = $2 \
                   ON CONFLICT (delivery_id) DO UPDATE \
                   SET next_attempt_at = excluded.next_attempt_at) \
                 UPDATE deliveries SET status = 'pending', next_attempt_at = $1, \
                 replayed_after = attempts, updated_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(delivery_id)
            .execute(&mut *tx)
            .await?;
            ReplayOutcome::Replayed
        }
    };
    tx.commit().await?;
    Ok(outcome)
}
