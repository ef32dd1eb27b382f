//! Company events and the deliveries they owe.

use sqlx::PgPool;

use crate::store::{DeliveryRecord, NewCompanyEvent, SnapshotKey};

/// The event and its deliveries commit together.
pub(super) async fn record(
    pool: &PgPool,
    event: &NewCompanyEvent,
) -> Result<Vec<DeliveryRecord>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO company_events (id, object_type, event_type, company_id, user_login, \
         trip_id, occurred_at, object, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&event.id)
    .bind(&event.object_type)
    .bind(&event.event_type)
    .bind(&event.company_id)
    .bind(&event.user_login)
    .bind(&event.trip_id)
    .bind(event.occurred_at)
    .bind(&event.object)
    .bind(event.received_at)
    .execute(&mut *tx)
    .await?;
    // Its place in the company feed that the downstream publisher reads: after the event's
    // own insert, so the transaction has its id first (see downstream.rs, the horizon).
    sqlx::query("INSERT INTO company_outbox (event_id) VALUES ($1)")
        .bind(&event.id)
        .execute(&mut *tx)
        .await?;
    // A delivery id is `msg_` and 32 random hex digits, as on SQLite.
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, partner_id, status, attempts, next_attempt_at, \
         created_at, updated_at) SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), $1, \
         partner_id, 'pending', 0, $2, $2, $2 FROM subscriptions WHERE company_id = $3 \
         AND object_type = $4",
    )
    .bind(&event.id)
    .bind(event.received_at)
    .bind(&event.company_id)
    .bind(&event.object_type)
    .execute(&mut *tx)
    .await?;
    let deliveries = of_event_in(&mut tx, &event.id).await?;
    tx.commit().await?;
    Ok(deliveries)
}

pub(super) async fn of_event(
    pool: &PgPool,
    event_id: &str,
) -> Result<Vec<DeliveryRecord>, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    of_event_in(&mut connection, event_id).await
}

async fn of_event_in(
    connection: &mut sqlx::PgConnection,
    event_id: &str,
) -> Result<Vec<DeliveryRecord>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, event_id, partner_id, status, attempts FROM deliveries WHERE event_id = $1 \
         ORDER BY partner_id",
    )
    .bind(event_id)
    .fetch_all(connection)
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
