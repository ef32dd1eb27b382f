//! A partner's withdrawal of an alert: the mark and its `alert.withdrawn` event, in one
//! transaction of the writer.

use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use super::{alerts::announce, rows::ts};
use crate::store::{AlertOwner, EVENT_ALERT_WITHDRAWN, WithdrawOutcome, WithdrawTarget};

pub(super) fn withdraw(
    db: &Connection,
    target: &WithdrawTarget,
    at: OffsetDateTime,
) -> rusqlite::Result<WithdrawOutcome> {
    let current: Option<(String, String, i64, bool)> = db
        .prepare_cached(
            "SELECT company_id, user_id, revision, withdrawn_at IS NOT NULL FROM alerts \
             WHERE id = ?1 AND partner_id = ?2 AND (?3 IS NULL OR company_id = ?3)",
        )?
        .query_row(
            params![target.alert_id, target.partner_id, target.company_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let Some((company_id, user_id, revision, withdrawn)) = current else {
        return Ok(WithdrawOutcome::NotFound);
    };
    if withdrawn {
        return Ok(WithdrawOutcome::AlreadyWithdrawn);
    }
    db.prepare_cached("UPDATE alerts SET withdrawn_at = ?1 WHERE id = ?2")?
        .execute(params![ts(at), target.alert_id])?;
    let owner = AlertOwner {
        partner_id: target.partner_id.clone(),
        company_id,
    };
    announce(
        db,
        EVENT_ALERT_WITHDRAWN,
        &target.alert_id,
        revision,
        &owner,
        &user_id,
        at,
    )?;
    Ok(WithdrawOutcome::Withdrawn)
}
