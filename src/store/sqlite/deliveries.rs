//! Deliveries to postback URLs: claims, attempts, the admin's view, replays.
//!
//! Every write runs on the writer thread, so a claim here is atomic without row locks, and the
//! live leases it counts per partner are all there are; the lease columns still matter when a
//! previous process died holding a claim.

use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::rows::{from_millis, millis, parse_ts, ts};
use crate::store::{
    AttemptRecord, ClaimRequest, ClaimedDelivery, CompanyEventRecord, DELIVERY_DELIVERED,
    DELIVERY_FAILED, DELIVERY_PENDING, DeliveryBacklog, DeliveryFilter, DeliveryNext,
    DeliverySummary, FinishedAttempt, ReplayOutcome, WorkerStep,
};

/// Claims the oldest due deliveries, partner by partner within each one's free room (its limit
/// less its live leases), then the oldest of those overall. Partner by partner rather than one
/// ranking of every due delivery: a partner's oldest due deliveries are an index range, so a
/// claim on the writer thread stays short however long a stuck partner's backlog grows.
pub(super) fn claim(
    db: &Connection,
    claimant: &str,
    claim: ClaimRequest,
) -> rusqlite::Result<Vec<ClaimedDelivery>> {
    let ClaimRequest {
        now,
        lease_until,
        limit,
        per_partner_limit,
    } = claim;
    let now_ms = millis(now);
    let room: Vec<(String, i64)> = db
        .prepare_cached(
            "SELECT p.id, ?2 - (SELECT count(*) FROM deliveries d WHERE d.partner_id = p.id \
             AND d.status = 'pending' AND d.lease_until_ms > ?1) FROM partners p",
        )?
        .query_map(params![now_ms, per_partner_limit], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut oldest_due = db.prepare_cached(
        "SELECT next_attempt_ms, id FROM deliveries WHERE partner_id = ?1 \
         AND status = 'pending' AND next_attempt_ms <= ?2 \
         AND (lease_until_ms IS NULL OR lease_until_ms <= ?2) \
         ORDER BY next_attempt_ms LIMIT ?3",
    )?;
    let mut due: Vec<(i64, String)> = Vec::new();
    for (partner_id, free) in room.iter().filter(|(_, free)| *free > 0) {
        for row in oldest_due.query_map(params![partner_id, now_ms, (*free).min(limit)], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })? {
            due.push(row?);
        }
    }
    due.sort_unstable();
    due.truncate(usize::try_from(limit).unwrap_or(0));
    let mut take = db.prepare_cached(
        "UPDATE deliveries SET lease_owner = ?1, lease_until_ms = ?2 WHERE id = ?3",
    )?;
    for (_, id) in &due {
        take.execute(params![claimant, millis(lease_until), id])?;
    }
    let mut statement = db.prepare_cached(
        "SELECT d.id, d.attempts, d.replayed_after, d.partner_id, p.postback_url, \
         p.postback_secret, e.id, e.object_type, e.event_type, e.company_id, e.user_login, \
         e.trip_id, e.occurred_at, \
         CASE WHEN p.previous_secret_until_ms > ?2 THEN p.previous_postback_secret END \
         FROM deliveries d JOIN company_events e ON e.id = d.event_id \
         JOIN partners p ON p.id = d.partner_id WHERE d.id = ?1",
    )?;
    due.iter()
        .map(|(due_ms, id)| {
            statement.query_row(params![id, now_ms], |row| {
                Ok(ClaimedDelivery {
                    id: row.get(0)?,
                    attempts: row.get(1)?,
                    replayed_after: row.get(2)?,
                    due_at: from_millis(*due_ms)?,
                    partner_id: row.get(3)?,
                    postback_url: row.get(4)?,
                    postback_secret: row.get(5)?,
                    previous_postback_secret: row.get(13)?,
                    event: CompanyEventRecord {
                        id: row.get(6)?,
                        object_type: row.get(7)?,
                        event_type: row.get(8)?,
                        company_id: row.get(9)?,
                        user_login: row.get(10)?,
                        trip_id: row.get(11)?,
                        occurred_at: parse_ts(&row.get::<_, String>(12)?)?,
                    },
                })
            })
        })
        .collect()
}

/// One step of a worker (`Store::finish_and_claim`), in the writer's transaction: its ended
/// attempts recorded and the room they freed claimed again.
pub(super) fn finish_and_claim(
    db: &Connection,
    claimant: &str,
    finished: &[FinishedAttempt],
    request: ClaimRequest,
) -> rusqlite::Result<WorkerStep> {
    Ok(WorkerStep {
        kept: finish_all(db, claimant, finished)?,
        claimed: claim(db, claimant, request)?,
        next_due: next_due(db, request.now)?,
    })
}

/// Records the attempts of one claimant in the writer's transaction, in order.
pub(super) fn finish_all(
    db: &Connection,
    claimant: &str,
    finished: &[FinishedAttempt],
) -> rusqlite::Result<Vec<bool>> {
    finished
        .iter()
        .map(|f| finish(db, claimant, &f.delivery_id, &f.attempt, f.next))
        .collect()
}

fn finish(
    db: &Connection,
    claimant: &str,
    delivery_id: &str,
    attempt: &AttemptRecord,
    next: DeliveryNext,
) -> rusqlite::Result<bool> {
    db.prepare_cached(
        "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, \
         status_code, error, response_body, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        delivery_id,
        attempt.attempt,
        ts(attempt.started_at),
        attempt.duration_ms,
        attempt.status_code,
        attempt.error,
        attempt.response_body,
        attempt.outcome,
    ])?;
    let (status, next_ms) = match next {
        DeliveryNext::Delivered => (DELIVERY_DELIVERED, None),
        DeliveryNext::RetryAt(at) => (DELIVERY_PENDING, Some(millis(at))),
        DeliveryNext::Failed | DeliveryNext::Gone => (DELIVERY_FAILED, None),
    };
    let applied =
        db.prepare_cached(
            "UPDATE deliveries SET status = ?1, attempts = max(attempts, ?2), \
             next_attempt_ms = coalesce(?3, next_attempt_ms), lease_owner = NULL, \
             lease_until_ms = NULL, last_status = ?4, last_error = ?5, updated_at = ?6 \
             WHERE id = ?7 AND lease_owner = ?8",
        )?
        .execute(params![
            status,
            attempt.attempt,
            next_ms,
            attempt.status_code,
            attempt.error,
            ts(attempt.started_at),
            delivery_id,
            claimant,
        ])? == 1;
    if applied && next == DeliveryNext::Gone {
        db.prepare_cached(
            "DELETE FROM subscriptions WHERE (partner_id, company_id, object_type) = \
             (SELECT d.partner_id, e.company_id, e.object_type FROM deliveries d \
              JOIN company_events e ON e.id = d.event_id WHERE d.id = ?1)",
        )?
        .execute([delivery_id])?;
    }
    Ok(applied)
}

pub(super) fn release_claims(db: &Connection) -> rusqlite::Result<u64> {
    let released = db.execute(
        "UPDATE deliveries SET lease_owner = NULL, lease_until_ms = NULL \
         WHERE lease_owner IS NOT NULL",
        [],
    )?;
    Ok(released as u64)
}

fn next_due(db: &Connection, after: OffsetDateTime) -> rusqlite::Result<Option<OffsetDateTime>> {
    // The first unclaimed delivery past `after` (an index range of `deliveries_due`, however
    // many are due and held back before it), or a claimed one, due again when its lease
    // lapses (the few claimed ones, `deliveries_claimed`).
    let ms: Option<i64> = db
        .prepare_cached(
            "SELECT min(due) FROM (\
               SELECT * FROM (SELECT next_attempt_ms AS due FROM deliveries \
                 WHERE status = 'pending' AND next_attempt_ms > ?1 AND lease_until_ms IS NULL \
                 ORDER BY next_attempt_ms LIMIT 1) \
               UNION ALL \
               SELECT max(next_attempt_ms, lease_until_ms) AS due FROM deliveries \
                 WHERE status = 'pending' AND lease_until_ms IS NOT NULL \
                 AND max(next_attempt_ms, lease_until_ms) > ?1)",
        )?
        .query_row([millis(after)], |row| row.get(0))?;
    ms.map(from_millis).transpose()
}

pub(super) fn backlog(db: &Connection) -> rusqlite::Result<Vec<DeliveryBacklog>> {
    // Per partner, an index range of `deliveries_due_by_partner`.
    let mut statement = db.prepare_cached(
        "SELECT p.id, count(d.id), min(d.next_attempt_ms) FROM partners p \
         LEFT JOIN deliveries d ON d.partner_id = p.id AND d.status = 'pending' \
         GROUP BY p.id ORDER BY p.id",
    )?;
    let rows = statement.query_map([], |row| {
        let oldest: Option<i64> = row.get(2)?;
        Ok(DeliveryBacklog {
            partner_id: row.get(0)?,
            pending: row.get(1)?,
            oldest_next_attempt: oldest.map(from_millis).transpose()?,
        })
    })?;
    rows.collect()
}

const SUMMARY: &str = "SELECT d.id, d.event_id, d.partner_id, e.company_id, e.object_type, \
     e.event_type, d.status, d.attempts, d.next_attempt_ms, d.last_status, d.last_error, \
     d.created_at, d.updated_at FROM deliveries d JOIN company_events e ON e.id = d.event_id";

fn summary(row: &Row<'_>) -> rusqlite::Result<DeliverySummary> {
    let status: String = row.get(6)?;
    let pending = status == DELIVERY_PENDING;
    Ok(DeliverySummary {
        id: row.get(0)?,
        event_id: row.get(1)?,
        partner_id: row.get(2)?,
        company_id: row.get(3)?,
        object_type: row.get(4)?,
        event_type: row.get(5)?,
        status,
        attempts: row.get(7)?,
        next_attempt_at: if pending {
            Some(from_millis(row.get(8)?)?)
        } else {
            None
        },
        last_status: row.get(9)?,
        last_error: row.get(10)?,
        created_at: parse_ts(&row.get::<_, String>(11)?)?,
        updated_at: parse_ts(&row.get::<_, String>(12)?)?,
    })
}

pub(super) fn list(
    db: &Connection,
    filter: &DeliveryFilter,
) -> rusqlite::Result<Vec<DeliverySummary>> {
    let sql = format!(
        "{SUMMARY} WHERE (?1 IS NULL OR d.status = ?1) AND (?2 IS NULL OR d.partner_id = ?2) \
         ORDER BY d.rowid DESC LIMIT ?3"
    );
    db.prepare_cached(&sql)?
        .query_map(
            params![filter.status, filter.partner_id, filter.limit],
            summary,
        )?
        .collect()
}

pub(super) fn find(
    db: &Connection,
    delivery_id: &str,
) -> rusqlite::Result<Option<(DeliverySummary, Vec<AttemptRecord>)>> {
    let sql = format!("{SUMMARY} WHERE d.id = ?1");
    let Some(delivery) = db
        .prepare_cached(&sql)?
        .query_row([delivery_id], summary)
        .optional()?
    else {
        return Ok(None);
    };
    let attempts = db
        .prepare_cached(
            "SELECT attempt, started_at, duration_ms, status_code, error, response_body, outcome \
             FROM delivery_attempts WHERE delivery_id = ?1 ORDER BY id",
        )?
        .query_map([delivery_id], |row| {
            Ok(AttemptRecord {
                attempt: row.get(0)?,
                started_at: parse_ts(&row.get::<_, String>(1)?)?,
                duration_ms: row.get(2)?,
                status_code: row.get(3)?,
                error: row.get(4)?,
                response_body: row.get(5)?,
                outcome: row.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some((delivery, attempts)))
}

pub(super) fn replay(
    db: &Connection,
    delivery_id: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<ReplayOutcome> {
    let status: Option<String> = db
        .query_row(
            "SELECT status FROM deliveries WHERE id = ?1",
            [delivery_id],
            |row| row.get(0),
        )
        .optional()?;
    match status.as_deref() {
        None => Ok(ReplayOutcome::NotFound),
        Some(DELIVERY_PENDING) => Ok(ReplayOutcome::StillPending),
        Some(_) => {
            db.execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_ms = ?1, \
                 replayed_after = attempts, lease_owner = NULL, lease_until_ms = NULL, updated_at = ?2 WHERE id = ?3",
                params![millis(now), ts(now), delivery_id],
            )?;
            Ok(ReplayOutcome::Replayed)
        }
    }
}
