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
//! Claims and outcomes commit without waiting for the WAL's flush (`synchronous_commit` off
//! for their transactions): a claim or an outcome lost with the server only means the delivery
//! is sent again, under the same `webhook-id` — at least once, as promised.
//!
//! Plans that stay put: these statements run as prepared statements, whose generic plan is
//! made once per connection from the tables' sizes at that moment and kept until a vacuum of
//! the queue invalidates it. A plan made while `deliveries` was small scanned it whole for
//! every claim and every outcome (5–15 ms a step after 40,000 deliveries, seen with
//! `auto_explain`), and lists joined to lists compared every row with every other. So every
//! row is reached through a key: a probe per claimed delivery (`LATERAL … LIMIT 1`, which the
//! planner cannot turn into a join), `= ANY(array)` on a primary key for the outcomes, a
//! lease's presence read by a probe rather than an anti-join, and sequential scans are off in
//! these transactions, whose every access has an index made for it.

use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;

use crate::store::{
    ClaimRequest, ClaimedDelivery, DELIVERY_DELIVERED, DELIVERY_FAILED, DELIVERY_PENDING,
    DeliveryNext, FinishedAttempt, WorkerStep,
};

/// Serialises delivery claims across instances (an arbitrary, fixed lock id; see `claim`).
const CLAIM_LOCK: i64 = 0x6d61_6573_7472_6f02;

/// Claims the oldest due deliveries of the queue, partner by partner within each one's free
/// room (its limit less its live leases), then the oldest of those overall. Partner by partner
/// (a `LATERAL` subquery) rather than one ranking of every due delivery: a partner's oldest due
/// deliveries are an index range, so a claim stays short however long a stuck partner's
/// backlog grows.
pub(super) async fn claim(
    pool: &PgPool,
    claimant: &str,
    claim: ClaimRequest,
) -> Result<Vec<ClaimedDelivery>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    begin_claiming(&mut tx).await?;
    let claimed = claim_in(&mut tx, claimant, claim).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// One step of a worker (`Store::finish_and_claim`): its ended attempts recorded and the room
/// they freed claimed again, in one transaction.
pub(super) async fn finish_and_claim(
    pool: &PgPool,
    claimant: &str,
    finished: &[FinishedAttempt],
    claim: ClaimRequest,
) -> Result<WorkerStep, sqlx::Error> {
    let mut tx = pool.begin().await?;
    begin_claiming(&mut tx).await?;
    let kept = finish_in(&mut tx, claimant, finished).await?;
    let claimed = claim_in(&mut tx, claimant, claim).await?;
    let next_due = next_due(&mut tx, claim.now).await?;
    tx.commit().await?;
    Ok(WorkerStep {
        kept,
        claimed,
        next_due,
    })
}

/// Settings of a transaction that claims or finishes deliveries, and its turn.
async fn begin_claiming(connection: &mut PgConnection) -> Result<(), sqlx::Error> {
    // Two instances claiming at once would each count the same free room and together exceed
    // a partner's limit. Claims take turns instead, and so do outcomes (a claim could otherwise
    // take a delivery whose lapsed lease is being finished); the lock is taken before the
    // claim's statement, whose snapshot (READ COMMITTED) then holds every claim and outcome
    // committed before it.
    // No JIT: the planner cannot tell how few rows a partner's room admits, estimates a huge
    // claim, and compiling it took ~170 ms where running it took 0.2 ms (200,000 due).
    sqlx::query(
        "SELECT set_config('jit', 'off', true), set_config('synchronous_commit', 'off', true), \
         set_config('enable_seqscan', 'off', true), pg_advisory_xact_lock($1)",
    )
    .bind(CLAIM_LOCK)
    .execute(connection)
    .await
    .map(drop)
}

async fn claim_in(
    connection: &mut PgConnection,
    claimant: &str,
    claim: ClaimRequest,
) -> Result<Vec<ClaimedDelivery>, sqlx::Error> {
    // Every look-up below is a probe of a primary key, per row, whatever the planner believes
    // of the tables' sizes (see "Plans that stay put" in the module's documentation).
    let rows = sqlx::query(
        "WITH room AS (\
           SELECT p.id AS partner_id, least($5 - (SELECT count(*) FROM delivery_leases l \
             WHERE l.partner_id = p.id AND l.until > $3), $4) AS free \
           FROM partners p), \
         due AS (\
           SELECT oldest.* FROM room CROSS JOIN LATERAL (\
             SELECT q.delivery_id AS id, q.next_attempt_at, q.partner_id \
             FROM delivery_queue q \
             WHERE q.partner_id = room.partner_id AND q.next_attempt_at <= $3 \
             AND coalesce((SELECT l.until FROM delivery_leases l \
               WHERE l.delivery_id = q.delivery_id), '-infinity') <= $3 \
             ORDER BY q.next_attempt_at LIMIT greatest(room.free, 0)) oldest \
           ORDER BY oldest.next_attempt_at, oldest.id LIMIT $4), \
         claimed AS (\
           INSERT INTO delivery_leases (delivery_id, partner_id, owner, until) \
           SELECT id, partner_id, $1, $2 FROM due \
           ON CONFLICT (delivery_id) DO UPDATE SET owner = excluded.owner, \
             until = excluded.until) \
         SELECT c.id, d.attempts, d.replayed_after, c.next_attempt_at, c.partner_id, \
           p.postback_url, \
           p.postback_secret, e.id AS event_id, e.object_type, e.event_type, e.company_id, \
           e.user_login, e.trip_id, e.occurred_at, \
           CASE WHEN p.previous_secret_until > $3 THEN p.previous_postback_secret END \
             AS previous_postback_secret \
         FROM due c \
         CROSS JOIN LATERAL (SELECT attempts, replayed_after, event_id FROM deliveries \
           WHERE id = c.id LIMIT 1) d \
         CROSS JOIN LATERAL (SELECT * FROM company_events WHERE id = d.event_id LIMIT 1) e \
         JOIN partners p ON p.id = c.partner_id",
    )
    .bind(claimant)
    .bind(claim.lease_until)
    .bind(claim.now)
    .bind(claim.limit)
    .bind(claim.per_partner_limit)
    .fetch_all(connection)
    .await?;
    rows.iter()
        .map(|row| {
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
        })
        .collect()
}

/// Records the attempts of one claimant in one transaction.
pub(super) async fn finish_all(
    pool: &PgPool,
    claimant: &str,
    finished: &[FinishedAttempt],
) -> Result<Vec<bool>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    begin_claiming(&mut tx).await?;
    let kept = finish_in(&mut tx, claimant, finished).await?;
    tx.commit().await?;
    Ok(kept)
}

/// One multi-row statement logs the attempts and moves on each delivery still held by
/// `claimant` (the fence); a `Gone` one also ends its subscription.
async fn finish_in(
    connection: &mut PgConnection,
    claimant: &str,
    finished: &[FinishedAttempt],
) -> Result<Vec<bool>, sqlx::Error> {
    if finished.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = finished.iter().map(|f| f.delivery_id.as_str()).collect();
    let attempt: Vec<i64> = finished.iter().map(|f| f.attempt.attempt).collect();
    let started_at: Vec<OffsetDateTime> = finished.iter().map(|f| f.attempt.started_at).collect();
    let duration_ms: Vec<i64> = finished.iter().map(|f| f.attempt.duration_ms).collect();
    let status_code: Vec<Option<i32>> = finished
        .iter()
        .map(|f| f.attempt.status_code.map(|code| code as i32))
        .collect();
    let error: Vec<Option<&str>> = finished
        .iter()
        .map(|f| f.attempt.error.as_deref())
        .collect();
    let response_body: Vec<Option<&str>> = finished
        .iter()
        .map(|f| f.attempt.response_body.as_deref())
        .collect();
    let outcome: Vec<&str> = finished
        .iter()
        .map(|f| f.attempt.outcome.as_str())
        .collect();
    let (status, next_at): (Vec<&str>, Vec<Option<OffsetDateTime>>) = finished
        .iter()
        .map(|f| match f.next {
            DeliveryNext::Delivered => (DELIVERY_DELIVERED, None),
            DeliveryNext::RetryAt(at) => (DELIVERY_PENDING, Some(at)),
            DeliveryNext::Failed | DeliveryNext::Gone => (DELIVERY_FAILED, None),
        })
        .unzip();
    // Those that end here: their place in the queue goes with their lease.
    let settled: Vec<&str> = ids
        .iter()
        .zip(&next_at)
        .filter(|(_, next)| next.is_none())
        .map(|(id, _)| *id)
        .collect();
    // The fence: the leases this claimant still held, deleted through the primary key; what
    // follows reads their ids as one array (`kept`), so that no step joins a list to another
    // list row by row (see "Plans that stay put" in the module's documentation).
    let applied: Vec<String> = sqlx::query_scalar(
        "WITH f AS (SELECT * FROM unnest($2::text[], $3::int8[], $4::timestamptz[], \
           $5::int8[], $6::int4[], $7::text[], $8::text[], $9::text[], $10::text[], \
           $11::timestamptz[]) AS f(delivery_id, attempt, started_at, duration_ms, status_code, \
           error, response_body, outcome, status, next_at)), \
         logged AS (INSERT INTO delivery_attempts (delivery_id, attempt, started_at, \
           duration_ms, status_code, error, response_body, outcome) \
           SELECT delivery_id, attempt, started_at, duration_ms, status_code, error, \
           response_body, outcome FROM f), \
         released AS (DELETE FROM delivery_leases \
           WHERE delivery_id = ANY($2::text[]) AND owner = $1 RETURNING delivery_id), \
         kept AS (SELECT coalesce(array_agg(delivery_id), '{}') AS ids FROM released), \
         settled AS (DELETE FROM delivery_queue \
           WHERE delivery_id = ANY((SELECT ids FROM kept)::text[]) \
           AND delivery_id = ANY($12::text[])), \
         retried AS (UPDATE delivery_queue q SET next_attempt_at = f.next_at FROM f \
           WHERE q.delivery_id = f.delivery_id AND f.next_at IS NOT NULL \
           AND f.delivery_id = ANY((SELECT ids FROM kept)::text[])) \
         UPDATE deliveries d SET status = f.status, attempts = greatest(d.attempts, f.attempt), \
           next_attempt_at = coalesce(f.next_at, d.next_attempt_at), \
           last_status = f.status_code, last_error = f.error, updated_at = f.started_at \
         FROM f WHERE d.id = ANY((SELECT ids FROM kept)::text[]) AND f.delivery_id = d.id \
         RETURNING d.id",
    )
    .bind(claimant)
    .bind(&ids)
    .bind(&attempt)
    .bind(&started_at)
    .bind(&duration_ms)
    .bind(&status_code)
    .bind(&error)
    .bind(&response_body)
    .bind(&outcome)
    .bind(&status)
    .bind(&next_at)
    .bind(&settled)
    .fetch_all(&mut *connection)
    .await?;
    let kept: Vec<bool> = ids
        .iter()
        .map(|id| applied.iter().any(|a| a == id))
        .collect();
    for (f, _) in finished
        .iter()
        .zip(&kept)
        .filter(|(f, kept)| **kept && f.next == DeliveryNext::Gone)
    {
        sqlx::query(
            "DELETE FROM subscriptions s USING deliveries d, company_events e \
             WHERE d.id = $1 AND e.id = d.event_id AND s.partner_id = d.partner_id \
             AND s.company_id = e.company_id AND s.object_type = e.object_type",
        )
        .bind(&f.delivery_id)
        .execute(&mut *connection)
        .await?;
    }
    Ok(kept)
}

pub(super) async fn release_claims(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM delivery_leases")
        .execute(pool)
        .await?
        .rows_affected())
}

async fn next_due(
    connection: &mut PgConnection,
    after: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    // The first unclaimed delivery past `after` (an index range of `delivery_queue_due`, however
    // many are due and held back before it), or a claimed one, due again when its lease
    // lapses. A lease's delivery is pending and was due when claimed, so its lapse is the
    // lease's own `until`: the few live leases are read alone, never joined to the backlog
    // (a join the planner turned into a scan of every pending delivery, ~15 ms at 60,000).
    sqlx::query_scalar(
        "SELECT min(due) FROM (\
           (SELECT q.next_attempt_at AS due FROM delivery_queue q \
             WHERE q.next_attempt_at > $1 \
             AND (SELECT 1 FROM delivery_leases l WHERE l.delivery_id = q.delivery_id) IS NULL \
             ORDER BY q.next_attempt_at LIMIT 1) \
           UNION ALL \
           SELECT min(until) FROM delivery_leases WHERE until > $1) AS candidates",
    )
    .bind(after)
    .fetch_one(connection)
    .await
}
