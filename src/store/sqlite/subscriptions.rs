//! Company notification subscriptions.

use rusqlite::{Connection, params};
use time::OffsetDateTime;

use super::rows::ts;
use crate::store::Subscription;

pub(super) fn subscribe(db: &Connection, s: &Subscription) -> rusqlite::Result<bool> {
    let inserted = db.execute(
        "INSERT INTO subscriptions (partner_id, company_id, object_type, created_at) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        params![
            s.partner_id,
            s.company_id,
            s.object_type,
            ts(OffsetDateTime::now_utc())
        ],
    )?;
    Ok(inserted == 1)
}

pub(super) fn unsubscribe(db: &Connection, s: &Subscription) -> rusqlite::Result<bool> {
    let removed = db.execute(
        "DELETE FROM subscriptions WHERE partner_id = ?1 AND company_id = ?2 AND object_type = ?3",
        params![s.partner_id, s.company_id, s.object_type],
    )?;
    Ok(removed == 1)
}

pub(super) fn of_company(db: &Connection, company_id: &str) -> rusqlite::Result<Vec<Subscription>> {
    db.prepare_cached(
        "SELECT partner_id, company_id, object_type FROM subscriptions WHERE company_id = ?1 \
         ORDER BY partner_id, object_type",
    )?
    .query_map([company_id], |row| {
        Ok(Subscription {
            partner_id: row.get(0)?,
            company_id: row.get(1)?,
            object_type: row.get(2)?,
        })
    })?
    .collect()
}
