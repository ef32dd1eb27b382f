//! Company events and the deliveries they owe.

use std::collections::HashMap;

use sqlx::{PgPool, Row, postgres::PgRow};
use time::OffsetDateTime;

use crate::store::{CompanyEventRecord, DeliveryRecord, NewCompanyEvent, SnapshotKey};

/// Records the events of one batch (group commit, `batch.rs`) in one transaction of four
/// statements, whatever their number: the events, their places in the company feed in queue
/// order, and the deliveries they owe, which are returned per event, in the order given.
pub(super) async fn record_all(
    pool: &PgPool,
    events: &[&NewCompanyEvent],
) -> Result<Vec<Vec<DeliveryRecord>>, sqlx::Error> {
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let column = |field: fn(&NewCompanyEvent) -> &str| -> Vec<&str> {
        events.iter().map(|e| field(e)).collect()
    };
    let optional = |field: fn(&NewCompanyEvent) -> Option<&str>| -> Vec<Option<&str>> {
        events.iter().map(|e| field(e)).collect()
    };
    let occurred_at: Vec<OffsetDateTime> = events.iter().map(|e| e.occurred_at).collect();
    let received_at: Vec<OffsetDateTime> = events.iter().map(|e| e.received_at).collect();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO company_events (id, object_type, event_type, company_id, user_login, \
         trip_id, occurred_at, object, received_at) SELECT * FROM unnest($1::text[], \
         $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], \
         $8::text[], $9::timestamptz[])",
    )
    .bind(&ids)
    .bind(column(|e| &e.object_type))
    .bind(column(|e| &e.event_type))
    .bind(column(|e| &e.company_id))
    .bind(optional(|e| e.user_login.as_deref()))
    .bind(optional(|e| e.trip_id.as_deref()))
    .bind(&occurred_at)
    .bind(optional(|e| e.object.as_deref()))
    .bind(&received_at)
    .execute(&mut *tx)
    .await?;
    // Their places in the company feed that the downstream publisher reads, in queue order:
    // after the events' own insert, so the transaction has its id first (see downstream.rs,
    // the horizon).
    sqlx::query(
        "INSERT INTO company_outbox (event_id) SELECT event_id FROM unnest($1::text[]) \
         WITH ORDINALITY AS queued(event_id, place) ORDER BY place",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    // A delivery id is `msg_` and 32 random hex digits, as on SQLite.
    // Each delivery is queued for the workers too (`delivery_queue`, migration 0015).
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "WITH owed AS (INSERT INTO deliveries (id, event_id, partner_id, status, attempts, \
           next_attempt_at, created_at, updated_at) \
           SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.id, s.partner_id, \
           'pending', 0, e.received_at, e.received_at, e.received_at \
           FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) \
           AS e(id, company_id, object_type, received_at) \
           JOIN subscriptions s ON s.company_id = e.company_id \
             AND s.object_type = e.object_type \
           RETURNING id, event_id, partner_id, status, attempts, next_attempt_at), \
         queued AS (INSERT INTO delivery_queue (delivery_id, partner_id, next_attempt_at) \
           SELECT id, partner_id, next_attempt_at FROM owed) \
         SELECT id, event_id, partner_id, status, attempts FROM owed",
    )
    .bind(&ids)
    .bind(column(|e| &e.company_id))
    .bind(column(|e| &e.object_type))
    .bind(&received_at)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut owed: HashMap<String, Vec<DeliveryRecord>> = HashMap::new();
    for (id, event_id, partner_id, status, attempts) in rows {
        owed.entry(event_id.clone())
            .or_default()
            .push(DeliveryRecord {
                id,
                event_id,
                partner_id,
                status,
                attempts,
            });
    }
    Ok(ids
        .iter()
        .map(|id| {
            let mut deliveries = owed.remove(*id).unwrap_or_default();
            deliveries.sort_by(|a, b| a.partner_id.cmp(&b.partner_id));
            deliveries
        })
        .collect())
}

pub(super) async fn of_event(
    pool: &PgPool,
    event_id: &str,
) -> Result<Vec<DeliveryRecord>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, event_id, partner_id, status, attempts FROM deliveries WHERE event_id = $1 \
         ORDER BY partner_id",
    )
    .bind(event_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, event_id, partner_id, status, attempts)| DeliveryRecord {
                id,
                event_id,
                partner_id,
                status,
                attempts,
            },
        )
        .collect())
}

/// A company event's columns of `row`, its id in the column `id_column` (a claim's row names
/// the delivery's id `id`).
pub(super) fn record_of(row: &PgRow, id_column: &str) -> Result<CompanyEventRecord, sqlx::Error> {
    Ok(CompanyEventRecord {
        id: row.try_get(id_column)?,
        object_type: row.try_get("object_type")?,
        event_type: row.try_get("event_type")?,
        company_id: row.try_get("company_id")?,
        user_login: row.try_get("user_login")?,
        trip_id: row.try_get("trip_id")?,
        occurred_at: row.try_get("occurred_at")?,
    })
}

/// The latest snapshot sent for a trip or a profile of the company.
pub(super) async fn snapshot(
    pool: &PgPool,
    company_id: &str,
    key: &SnapshotKey,
) -> Result<Option<String>, sqlx::Error> {
    let (sql, value) = match key {
        SnapshotKey::Trip(trip_id) => (
            "SELECT object FROM company_events WHERE company_id = $1 AND trip_id = $2 \
             AND object_type = 'itinerary' AND object IS NOT NULL \
             ORDER BY received_at DESC, id DESC LIMIT 1",
            trip_id,
        ),
        SnapshotKey::Profile { user_login } => (
            "SELECT object FROM company_events WHERE company_id = $1 AND user_login = $2 \
             AND object_type = 'profile' AND object IS NOT NULL \
             ORDER BY received_at DESC, id DESC LIMIT 1",
            user_login,
        ),
    };
    sqlx::query_scalar(sql)
        .bind(company_id)
        .bind(value)
        .fetch_optional(pool)
        .await
}
