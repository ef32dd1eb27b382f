//! Company events and the deliveries they owe.

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{millis, ts};
use crate::store::{DeliveryRecord, NewCompanyEvent, SnapshotKey};

/// Runs inside the writer's transaction: the event and its deliveries commit together.
pub(super) fn record(
    db: &Connection,
    event: &NewCompanyEvent,
) -> rusqlite::Result<Vec<DeliveryRecord>> {
    let received_at = ts(event.received_at);
    db.prepare_cached(
        "INSERT INTO company_events (id, object_type, event_type, company_id, user_login, \
         trip_id, occurred_at, object, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        event.id,
        event.object_type,
        event.event_type,
        event.company_id,
        event.user_login,
        event.trip_id,
        ts(event.occurred_at),
        event.object,
        received_at,
    ])?;
    // Its place in the company feed that the downstream publisher reads.
    db.prepare_cached("INSERT INTO company_outbox (event_id) VALUES (?1)")?
        .execute([&event.id])?;
    // A delivery id is `msg_` and 32 random hex digits, as on PostgreSQL.
    db.prepare_cached(
        "INSERT INTO deliveries (id, event_id, partner_id, status, attempts, next_attempt_ms, \
         created_at, updated_at) SELECT 'msg_' || lower(hex(randomblob(16))), ?1, partner_id, \
         'pending', 0, ?2, ?3, ?3 FROM subscriptions WHERE company_id = ?4 AND object_type = ?5",
    )?
    .execute(params![
        event.id,
        millis(event.received_at),
        received_at,
        event.company_id,
        event.object_type
    ])?;
    of_event(db, &event.id)
}

pub(super) fn of_event(db: &Connection, event_id: &str) -> rusqlite::Result<Vec<DeliveryRecord>> {
    db.prepare_cached(
        "SELECT id, event_id, partner_id, status, attempts FROM deliveries WHERE event_id = ?1 \
         ORDER BY partner_id",
    )?
    .query_map([event_id], |row| {
        Ok(DeliveryRecord {
            id: row.get(0)?,
            event_id: row.get(1)?,
            partner_id: row.get(2)?,
            status: row.get(3)?,
            attempts: row.get(4)?,
        })
    })?
    .collect()
}

/// The latest snapshot sent for a trip or a profile of the company.
pub(super) fn snapshot(
    db: &Connection,
    company_id: &str,
    key: &SnapshotKey,
) -> rusqlite::Result<Option<String>> {
    let (sql, value) = match key {
        SnapshotKey::Trip(trip_id) => (
            "SELECT object FROM company_events WHERE company_id = ?1 AND trip_id = ?2 \
             AND object_type = 'itinerary' AND object IS NOT NULL \
             ORDER BY rowid DESC LIMIT 1",
            trip_id,
        ),
        SnapshotKey::Profile { user_login } => (
            "SELECT object FROM company_events WHERE company_id = ?1 AND user_login = ?2 \
             AND object_type = 'profile' AND object IS NOT NULL \
             ORDER BY rowid DESC LIMIT 1",
            user_login,
        ),
    };
    db.prepare_cached(sql)?
        .query_row(params![company_id, value], |row| row.get(0))
        .optional()
}
