//! A partner's withdrawal of an alert: the mark and its `alert.withdrawn` event, in one
//! transaction.

use sqlx::PgPool;
use time::OffsetDateTime;

use super::alerts::announce;
use crate::store::{AlertOwner, EVENT_ALERT_WITHDRAWN, WithdrawOutcome, WithdrawTarget};

pub(super) async fn withdraw(
    pool: &PgPool,
    target: &WithdrawTarget,
    at: OffsetDateTime,
) -> Result<WithdrawOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // FOR UPDATE: a withdrawal takes turns with an update or a mark of the same alert, and with
    // another withdrawal, which then finds it withdrawn and writes no second event.
    let current: Option<(String, String, i64, bool)> = sqlx::query_as(
        "SELECT company_id, user_id, revision, withdrawn_at IS NOT NULL FROM alerts \
         WHERE id = $1 AND partner_id = $2 AND ($3::text IS NULL OR company_id = $3) \
         FOR UPDATE",
    )
    .bind(&target.alert_id)
    .bind(&target.partner_id)
    .bind(&target.company_id)
    .fetch_optional(&mut *tx)
    .await?;
    let outcome = match current {
        None => WithdrawOutcome::NotFound,
        Some((.., true)) => WithdrawOutcome::AlreadyWithdrawn,
        Some((company_id, user_id, revision, false)) => {
            sqlx::query("UPDATE alerts SET withdrawn_at = $1 WHERE id = $2")
                .bind(at)
                .bind(&target.alert_id)
                .execute(&mut *tx)
                .await?;
            let owner = AlertOwner {
                partner_id: target.partner_id.clone(),
                company_id,
            };
            announce(
                &mut tx,
                EVENT_ALERT_WITHDRAWN,
                &target.alert_id,
                revision,
                &owner,
                &user_id,
                at,
            )
            .await?;
            tx.commit().await?;
            return Ok(WithdrawOutcome::Withdrawn);
        }
    };
    // Ended here rather than on drop, which would keep the row lock until the connection's
    // next use.
    tx.rollback().await?;
    Ok(outcome)
}
