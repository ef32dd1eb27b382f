//! Deliveries as the workers of every instance see them: claims, outcomes, when to look again.
//!
//! The deliveries still owed wait in `delivery_queue` (migration 0015), a row each, deleted
//! with the final outcome: claims walk its index, not one of the deliveries table, where every
//! delivery ever recorded would leave a dead entry until a vacuum (see `queue_upkeep.rs`).
//!
//! A claim is a lease, a row of `delivery_leases`: two workers never hold one delivery at once,
//! and a delivery claimed by an instance that died becomes due again when its lease lapses. The
//! lease outlasts the request timeout, and finishing an attempt is fenced on the claimant (it
//! deletes the claimant's lease), so a worker that lost its lease cannot overwrite its
//! successor's outcome. Claims and outcomes take turns on an advisory lock, so a partner's limit
//! on live leases holds across instances, and a claim sees every outcome recorded before it (no
//! row locks: a delivery whose lapsed lease is being finished is not claimed again meanwhile).
//! Leases stay out of the delivery's row so that a delivery's row changes once, when its outcome
//! is recorded (migration 0014), in place: none of its indexed columns changes.
//!
//! A worker's step — its outcomes, its claim, when to look again — is one call of
//! `delivery_worker_step` (migration 0016), which runs it on the server in the call's own
//! transaction: one round trip where six were (BEGIN, the lock, three statements, COMMIT), each
//! of which waited, on a busy server, for the worker's task to be scheduled again while the
//! transaction held the claim lock. A claim alone and outcomes alone are the same call with
//! nothing ended, or with room for nothing.
//!
//! Claims and outcomes commit without waiting for the WAL's flush (`synchronous_commit` off
//! for their transactions): a claim or an outcome lost with the server only means the delivery
//! is sent again, under the same `webhook-id` — at least once, as promised.
//!
//! Plans that stay put: the function's statements are prepared once per connection, and their
//! generic plan is made from the tables' sizes at that moment and kept until a vacuum of
//! the queue invalidates it. A plan made while `deliveries` was small scanned it whole for
//! every claim and every outcome (5–15 ms a step after 40,000 deliveries, seen with
//! `auto_explain`), and lists joined to lists compared every row with every other. So every
//! row is reached through a key: a probe per claimed delivery (`LATERAL … LIMIT 1`, which the
//! planner cannot turn into a join), `= ANY(array)` on a primary key for the outcomes, a
//! lease's presence read by a probe rather than an anti-join, and the function runs with
//! sequential scans off, since its every access has an index made for it.

use sqlx::{PgPool, Row, postgres::PgRow};
use time::OffsetDateTime;

use crate::store::{
    AttemptRecord, ClaimRequest, ClaimedDelivery, DELIVERY_DELIVERED, DELIVERY_FAILED,
    DELIVERY_PENDING, DeliveryNext, FinishedAttempt, WorkerStep,
};

/// Serialises delivery claims and outcomes across instances (an arbitrary, fixed lock id).
const CLAIM_LOCK: i64 = 0x6d61_6573_7472_6f02;

/// Claims the oldest due deliveries of the queue, partner by partner within each one's free
/// room (its limit less its live leases), then the oldest of those overall. Partner by partner
/// (a `LATERAL` subquery) rather than one ranking of every due delivery: a partner's oldest due
/// deliveries are an index range, so a claim stays short however long a stuck partner's
/// backlog grows. The statements are those of `delivery_worker_step` (migration 0016).
pub(super) async fn claim(
    pool: &PgPool,
    claimant: &str,
    claim: ClaimRequest,
) -> Result<Vec<ClaimedDelivery>, sqlx::Error> {
    Ok(step(pool, claimant, &[], claim).await?.claimed)
}

/// Records the attempts of one claimant, claiming nothing.
pub(super) async fn finish_all(
    pool: &PgPool,
    claimant: &str,
    finished: &[FinishedAttempt],
) -> Result<Vec<bool>, sqlx::Error> {
    // Room for nothing; the step's times then only bear on its `next_due`, not wanted here.
    let nothing = ClaimRequest {
        now: OffsetDateTime::UNIX_EPOCH,
        lease_until: OffsetDateTime::UNIX_EPOCH,
        limit: 0,
        per_partner_limit: 0,
    };
    Ok(step(pool, claimant, finished, nothing).await?.kept)
}

/// One step of a worker (`Store::finish_and_claim`): its ended attempts recorded (a `Gone` one
/// also ends its subscription), the room they freed claimed again, and when to look again, in
/// one transaction.
pub(super) async fn finish_and_claim(
    pool: &PgPool,
    claimant: &str,
    finished: &[FinishedAttempt],
    claim: ClaimRequest,
) -> Result<WorkerStep, sqlx::Error> {
    step(pool, claimant, finished, claim).await
}

async fn step(
    pool: &PgPool,
    claimant: &str,
    finished: &[FinishedAttempt],
    claim: ClaimRequest,
) -> Result<WorkerStep, sqlx::Error> {
    let ids: Vec<&str> = finished.iter().map(|f| f.delivery_id.as_str()).collect();
    let (status, next_at): (Vec<&str>, Vec<Option<OffsetDateTime>>) = finished
        .iter()
        .map(|f| match f.next {
            DeliveryNext::Delivered => (DELIVERY_DELIVERED, None),
            DeliveryNext::RetryAt(at) => (DELIVERY_PENDING, Some(at)),
            DeliveryNext::Failed | DeliveryNext::Gone => (DELIVERY_FAILED, None),
        })
        .unzip();
    // Those that leave the queue here (no next attempt), and those whose subscription ends
    // with them.
    let settled: Vec<&str> = ids
        .iter()
        .zip(&next_at)
        .filter(|(_, next)| next.is_none())
        .map(|(id, _)| *id)
        .collect();
    let gone: Vec<&str> = finished
        .iter()
        .filter(|f| f.next == DeliveryNext::Gone)
        .map(|f| f.delivery_id.as_str())
        .collect();
    let rows = sqlx::query(
        "SELECT * FROM delivery_worker_step($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(claimant)
    .bind(CLAIM_LOCK)
    .bind(&ids)
    .bind(column(finished, |a| a.attempt))
    .bind(column(finished, |a| a.started_at))
    .bind(column(finished, |a| a.duration_ms))
    .bind(column(finished, |a| a.status_code.map(|code| code as i32)))
    .bind(column(finished, |a| a.error.as_deref()))
    .bind(column(finished, |a| a.response_body.as_deref()))
    .bind(column(finished, |a| a.outcome.as_str()))
    .bind(&status)
    .bind(&next_at)
    .bind(&settled)
    .bind(&gone)
    .bind(claim.now)
    .bind(claim.lease_until)
    .bind(claim.limit)
    .bind(claim.per_partner_limit)
    .fetch_all(pool)
    .await?;
    // The claimed deliveries, then the step's own row (its `id` is NULL).
    let (last, claimed) = rows
        .split_last()
        .ok_or_else(|| sqlx::Error::Protocol("the delivery step returned no row".into()))?;
    let recorded: Vec<String> = last.try_get("kept")?;
    Ok(WorkerStep {
        kept: ids
            .iter()
            .map(|id| recorded.iter().any(|r| r == id))
            .collect(),
        claimed: claimed
            .iter()
            .map(claimed_delivery)
            .collect::<Result<_, _>>()?,
        next_due: last.try_get("next_due")?,
    })
}

/// One field of every attempt, as an array to bind.
fn column<'a, T>(
    finished: &'a [FinishedAttempt],
    field: impl Fn(&'a AttemptRecord) -> T,
) -> Vec<T> {
    finished.iter().map(|f| field(&f.attempt)).collect()
}

fn claimed_delivery(row: &PgRow) -> Result<ClaimedDelivery, sqlx::Error> {
    Ok(ClaimedDelivery {
        id: row.try_get("id")?,
        attempts: row.try_get("attempts")?,
        replayed_after: row.try_get("replayed_after")?,
        due_at: row.try_get("next_attempt_at")?,
        partner_id: row.try_get("partner_id")?,
        postback_url: row.try_get("postback_url")?,
        postback_secret: row.try_get("postback_secret")?,
        previous_postback_secret: row.try_get("previous_postback_secret")?,
        event: super::events::record_of(row, "event_id")?,
    })
}

pub(super) async fn release_claims(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM delivery_leases")
        .execute(pool)
        .await?
        .rows_affected())
}
