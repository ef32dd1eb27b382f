//! Alert writes, many at a time: the statements a batch of creates or of updates runs
//! (`batch.rs` gathers the batches). A few multi-row statements per batch, whatever its size,
//! instead of a transaction of four statements per alert; a fan-out's rendering and metadata
//! document stored once (`stored_once`).
//!
//! Creates are one statement, so one transaction and one round trip: the alerts' insert (whose
//! unique constraint settles extRef races between instances), then, joined to the rows it
//! inserted, their revisions and `alert.created` events. Updates are a transaction: the rows
//! locked in id order (so two batches never deadlock on them), the outcomes decided here, then
//! one statement for the rows, revisions and events.

mod columns;
mod update;

use std::collections::{HashMap, HashSet};

use sqlx::{PgPool, Row};

use crate::store::{AlertContent, CreateOutcome, EVENT_ALERT_CREATED, NewAlert};
use columns::{Revisions, Shared, store_shared};
pub(super) use update::update;

fn create_sql() -> String {
    format!(
        "WITH input AS ( \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::int8[], $8::text[], $9::text[], $10::text[], $11::text[], \
                 $12::timestamptz[], $13::text[], $14::timestamptz[], $15::text[], $16::bytea[], \
                 $17::bytea[], $18::int4[]) WITH ORDINALITY AS i(id, partner_id, company_id, \
                 ext_ref, user_id, template_id, template_version, msg_type, topic, title, \
                 created_at, expires_at, body_hash, received_at, payload, rendering_hash, \
                 metadata_hash, metadata_at, ord)), \
         created AS ( \
             INSERT INTO alerts (id, partner_id, company_id, ext_ref, user_id, template_id, \
                 template_version, msg_type, topic, title, created_at, expires_at, revision, \
                 body_hash, received_at, updated_at) \
             SELECT id, partner_id, company_id, ext_ref, user_id, template_id, \
                 template_version, msg_type, topic, title, created_at, expires_at, 1, \
                 body_hash, received_at, received_at FROM input \
             ORDER BY partner_id, company_id, ext_ref \
             ON CONFLICT (partner_id, company_id, ext_ref) DO NOTHING RETURNING id), \
         named AS (SELECT i.* FROM input i JOIN created USING (id)), \
         {shared}, \
         revised AS ( \
             INSERT INTO alert_revisions (alert_id, revision, template_version, body_hash, \
                 payload, rendering_hash, metadata_hash, metadata_at, recorded_at) \
             SELECT id, 1, template_version, body_hash, payload, rendering_hash, \
                 metadata_hash, metadata_at, received_at FROM named), \
         announced AS ( \
             INSERT INTO outbox (event_type, alert_id, revision, partner_id, company_id, \
                 user_id, occurred_at, template_id, expires_at) \
             SELECT '{EVENT_ALERT_CREATED}', id, 1, partner_id, company_id, user_id, \
                 received_at, template_id, expires_at FROM named ORDER BY ord) \
         SELECT id FROM created",
        shared = store_shared(19)
    )
}

/// Creates the alerts, each with its first revision and `alert.created` event; an extRef
/// already taken (also by an earlier alert of the batch) answers `Existing` or `Withdrawn`.
///
/// The extRefs are inserted in key order, so that two batches racing on the same extRefs wait
/// for each other in one direction only. The events follow the inserts they join (a
/// transaction has its id before it takes an outbox id: the publisher's horizon relies on it,
/// see `downstream.rs`), in the order the writes were queued.
pub(super) async fn create(
    pool: &PgPool,
    alerts: &[&NewAlert],
) -> Result<Vec<CreateOutcome>, sqlx::Error> {
    let mut shared = Shared::default();
    let mut revisions = Revisions::default();
    for alert in alerts {
        revisions.push(&alert.content, &mut shared);
    }
    let column = |f: fn(&NewAlert) -> String| alerts.iter().map(|a| f(a)).collect::<Vec<_>>();
    // One transaction for the insert and the look-up of the extRefs it lost: were the insert
    // committed on its own, a failed look-up would answer an error (504 or 500: "not applied")
    // for alerts that were stored.
    let mut tx = pool.begin().await?;
    let created: Vec<String> = sqlx::query_scalar(&create_sql())
        .bind(column(|a| a.id.clone()))
        .bind(column(|a| a.owner.partner_id.clone()))
        .bind(column(|a| a.owner.company_id.clone()))
        .bind(column(|a| a.content.ext_ref.clone()))
        .bind(column(|a| a.content.user_id.clone()))
        .bind(column(|a| a.content.template_id.clone()))
        .bind(contents(alerts, |c| c.template_version))
        .bind(column(|a| a.content.msg_type.clone()))
        .bind(contents(alerts, |c| c.topic.clone()))
        .bind(contents(alerts, |c| c.title.clone()))
        .bind(column(|a| a.content.created_at.clone()))
        .bind(contents(alerts, |c| c.expires_at))
        .bind(column(|a| a.content.body_hash.clone()))
        .bind(alerts.iter().map(|a| a.received_at).collect::<Vec<_>>())
        .bind(revisions.payload)
        .bind(revisions.rendering_hash)
        .bind(revisions.metadata_hash)
        .bind(revisions.metadata_at)
        .bind(shared.rendering_hash)
        .bind(shared.title)
        .bind(shared.html)
        .bind(shared.text)
        .bind(shared.metadata_hash)
        .bind(shared.json)
        .fetch_all(&mut *tx)
        .await?;
    let created: HashSet<String> = created.into_iter().collect();
    let mut outcomes: Vec<Option<CreateOutcome>> = alerts
        .iter()
        .map(|alert| {
            created
                .contains(&alert.id)
                .then_some(CreateOutcome::Created)
        })
        .collect();
    let taken: Vec<&NewAlert> = alerts
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.is_none())
        .map(|(alert, _)| *alert)
        .collect();
    if taken.is_empty() {
        tx.commit().await?;
        return Ok(outcomes.into_iter().flatten().collect());
    }
    // The insert waited for the racers it lost to, so their rows are committed and visible to
    // this next statement (read committed).
    let holders = sqlx::query(
        "SELECT i.ord, a.id, a.body_hash, a.withdrawn_at IS NOT NULL AS withdrawn \
         FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY \
             AS i(partner_id, company_id, ext_ref, ord) \
         JOIN alerts a ON a.partner_id = i.partner_id AND a.company_id = i.company_id \
             AND a.ext_ref = i.ext_ref",
    )
    .bind(
        taken
            .iter()
            .map(|a| a.owner.partner_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        taken
            .iter()
            .map(|a| a.owner.company_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        taken
            .iter()
            .map(|a| a.content.ext_ref.clone())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut by_ord = HashMap::new();
    for row in holders {
        let ord: i64 = row.try_get("ord")?;
        by_ord.insert(ord as usize - 1, row);
    }
    let mut next_taken = 0;
    for (alert, outcome) in alerts.iter().zip(outcomes.iter_mut()) {
        if outcome.is_some() {
            continue;
        }
        // Purged since the insert lost to it: the batch is retried write by write.
        let row = by_ord.get(&next_taken).ok_or(sqlx::Error::RowNotFound)?;
        next_taken += 1;
        let alert_id: String = row.try_get("id")?;
        let body_hash: String = row.try_get("body_hash")?;
        let same_body = body_hash == alert.content.body_hash;
        *outcome = Some(if row.try_get("withdrawn")? {
            CreateOutcome::Withdrawn {
                alert_id,
                same_body,
            }
        } else {
            CreateOutcome::Existing {
                alert_id,
                same_body,
            }
        });
    }
    tx.commit().await?;
    Ok(outcomes.into_iter().flatten().collect())
}

fn contents<T>(alerts: &[&NewAlert], f: impl Fn(&AlertContent) -> T) -> Vec<T> {
    alerts.iter().map(|a| f(&a.content)).collect()
}
