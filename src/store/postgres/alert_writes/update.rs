//! The updates of a batch (see `alert_writes.rs`): the rows locked in id order, each update's
//! outcome decided against the alert's state as the batch's earlier updates left it, then one
//! statement for the rows, revisions and events.

use std::collections::HashMap;

use sqlx::{PgPool, Row};
use time::OffsetDateTime;

use super::columns::{Revisions, Shared, store_shared};
use crate::store::{
    AlertChange, AlertContent, AlertSelector, AlertTarget, EVENT_ALERT_UPDATED, UpdateOutcome,
};

/// An update applied by a batch: its target and change, the alert's id and its new revision.
type Written<'a> = (&'a AlertTarget, &'a AlertChange, String, i64);

/// An alert's state as the batch's updates see it: the stored row, then each applied update.
struct Current {
    alert_id: String,
    ext_ref: String,
    revision: i64,
    body_hash: String,
    withdrawn: bool,
}

fn update_sql() -> String {
    format!(
        "WITH changed AS ( \
             UPDATE alerts a SET user_id = u.user_id, template_id = u.template_id, \
                 template_version = u.template_version, msg_type = u.msg_type, \
                 topic = u.topic, title = u.title, created_at = u.created_at, \
                 expires_at = u.expires_at, revision = u.revision, body_hash = u.body_hash, \
                 updated_at = u.changed_at, expired_at = NULL \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::int8[], \
                 $11::text[], $12::timestamptz[]) AS u(id, user_id, template_id, \
                 template_version, msg_type, topic, title, created_at, expires_at, revision, \
                 body_hash, changed_at) \
             WHERE a.id = u.id AND a.id = ANY($1) RETURNING a.id), \
         input AS ( \
             SELECT * FROM UNNEST($13::text[], $14::int8[], $15::int8[], $16::text[], \
                 $17::text[], $18::bytea[], $19::bytea[], $20::int4[], $21::timestamptz[], \
                 $22::text[], $23::text[], $24::text[], $25::text[], $26::timestamptz[]) \
                 WITH ORDINALITY AS r(id, revision, template_version, body_hash, payload, \
                 rendering_hash, metadata_hash, metadata_at, changed_at, partner_id, \
                 company_id, user_id, template_id, expires_at, ord)), \
         named AS (SELECT * FROM input WHERE EXISTS (SELECT 1 FROM changed)), \
         {shared}, \
         revised AS ( \
             INSERT INTO alert_revisions (alert_id, revision, template_version, body_hash, \
                 payload, rendering_hash, metadata_hash, metadata_at, recorded_at) \
             SELECT id, revision, template_version, body_hash, payload, rendering_hash, \
                 metadata_hash, metadata_at, changed_at FROM named), \
         announced AS ( \
             INSERT INTO outbox (event_type, alert_id, revision, partner_id, company_id, \
                 user_id, occurred_at, template_id, expires_at) \
             SELECT '{EVENT_ALERT_UPDATED}', id, revision, partner_id, company_id, user_id, \
                 changed_at, template_id, expires_at FROM named ORDER BY ord) \
         SELECT COUNT(*) FROM changed",
        shared = store_shared(27)
    )
}

/// Updates the alerts, in the order given: each update applied bumps its alert's revision and
/// records a revision and an `alert.updated` event; two updates of one alert in a batch make
/// two revisions, as two transactions would.
pub(in crate::store::postgres) async fn update(
    pool: &PgPool,
    updates: &[&(AlertTarget, AlertChange)],
) -> Result<Vec<UpdateOutcome>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The extRefs turned into ids first: one probe of `alerts_ext_ref_key` per wanted extRef.
    // Ids and extRefs never change, so no lock is needed yet. A join on all three columns
    // rather than `= ANY` on each: planned without statistics (a fresh database, until
    // autovacuum's first ANALYZE), `= ANY` on each column made a scan of the partner's and
    // the company's whole ranges with the extRefs as a filter (docs/PERFORMANCE.md).
    let wanted: Vec<(&str, &str, &str)> = updates
        .iter()
        .filter_map(|(target, _)| match &target.selector {
            AlertSelector::ExtRef(ext_ref) => Some((
                target.owner.partner_id.as_str(),
                target.owner.company_id.as_str(),
                ext_ref.as_str(),
            )),
            AlertSelector::Id(_) => None,
        })
        .collect();
    let mut by_ext_ref: HashMap<(String, String, String), String> = HashMap::new();
    if !wanted.is_empty() {
        let mut wanted = wanted;
        wanted.sort_unstable();
        wanted.dedup();
        let column =
            |part: usize| -> Vec<&str> { wanted.iter().map(|w| [w.0, w.1, w.2][part]).collect() };
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT a.partner_id, a.company_id, a.ext_ref, a.id \
             FROM UNNEST($1::text[], $2::text[], $3::text[]) AS w(partner_id, company_id, ext_ref) \
             JOIN alerts a ON a.partner_id = w.partner_id AND a.company_id = w.company_id \
             AND a.ext_ref = w.ext_ref",
        )
        .bind(column(0))
        .bind(column(1))
        .bind(column(2))
        .fetch_all(&mut *tx)
        .await?;
        for (partner_id, company_id, ext_ref, id) in rows {
            by_ext_ref.insert((partner_id, company_id, ext_ref), id);
        }
    }
    let wanted_ids: Vec<Option<String>> = updates
        .iter()
        .map(|(target, _)| match &target.selector {
            AlertSelector::Id(id) => Some(id.clone()),
            AlertSelector::ExtRef(ext_ref) => by_ext_ref
                .get(&(
                    target.owner.partner_id.clone(),
                    target.owner.company_id.clone(),
                    ext_ref.clone(),
                ))
                .cloned(),
        })
        .collect();
    let mut ids: Vec<&str> = wanted_ids.iter().flatten().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    // FOR UPDATE, in id order: updates of one alert take turns, so revisions never collide,
    // and two batches lock the rows they share in the same order. Locking gives the
    // transaction its id before the events take outbox ids (see `create`). `= ANY` keeps the
    // plan an index scan whatever the batch's size (a join to the batch's rows could make the
    // planner scan the table once per row).
    let rows = sqlx::query(
        "SELECT id, partner_id, company_id, ext_ref, revision, body_hash, \
             withdrawn_at IS NOT NULL AS withdrawn \
         FROM alerts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut state: HashMap<String, (String, String, Current)> = HashMap::new();
    for row in rows {
        let alert_id: String = row.try_get("id")?;
        let owner = (row.try_get("partner_id")?, row.try_get("company_id")?);
        state.insert(
            alert_id.clone(),
            (
                owner.0,
                owner.1,
                Current {
                    alert_id,
                    ext_ref: row.try_get("ext_ref")?,
                    revision: row.try_get("revision")?,
                    body_hash: row.try_get("body_hash")?,
                    withdrawn: row.try_get("withdrawn")?,
                },
            ),
        );
    }

    let mut outcomes = Vec::with_capacity(updates.len());
    // The revisions written, in order, and the alert rows' final contents.
    let mut written: Vec<Written<'_>> = Vec::new();
    for (n, (target, change)) in updates.iter().map(|u| (&u.0, &u.1)).enumerate() {
        // Another partner's or company's alert is not found, as by an update alone.
        let Some(current) = wanted_ids[n]
            .as_ref()
            .and_then(|id| state.get_mut(id))
            .filter(|(partner, company, _)| {
                *partner == target.owner.partner_id && *company == target.owner.company_id
            })
            .map(|(_, _, current)| current)
        else {
            outcomes.push(UpdateOutcome::NotFound);
            continue;
        };
        let alert_id = current.alert_id.clone();
        let c = &change.content;
        // The same order of checks as an update alone: withdrawn outranks the body's faults.
        outcomes.push(if current.withdrawn {
            UpdateOutcome::Withdrawn { alert_id }
        } else if current.ext_ref != c.ext_ref {
            UpdateOutcome::ExtRefMismatch { alert_id }
        } else if current.body_hash == c.body_hash {
            UpdateOutcome::Unchanged {
                alert_id,
                revision: current.revision,
            }
        } else {
            current.revision += 1;
            current.body_hash.clone_from(&c.body_hash);
            written.push((target, change, alert_id.clone(), current.revision));
            UpdateOutcome::Updated {
                alert_id,
                revision: current.revision,
            }
        });
    }
    if written.is_empty() {
        tx.rollback().await?;
        return Ok(outcomes);
    }

    // Each alert's row takes the content of its last update in the batch.
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (n, (_, _, alert_id, _)) in written.iter().enumerate() {
        last.insert(alert_id.as_str(), n);
    }
    let mut rows: Vec<usize> = last.into_values().collect();
    rows.sort_unstable();
    let row_of = |f: &dyn Fn(&AlertContent) -> String| {
        rows.iter()
            .map(|&n| f(&written[n].1.content))
            .collect::<Vec<_>>()
    };
    let mut shared = Shared::default();
    let mut revisions = Revisions::default();
    for (_, change, _, _) in &written {
        revisions.push(&change.content, &mut shared);
    }
    let each = |f: &dyn Fn(&Written<'_>) -> String| written.iter().map(f).collect::<Vec<_>>();
    let changed: i64 = sqlx::query_scalar(&update_sql())
        .bind(
            rows.iter()
                .map(|&n| written[n].2.clone())
                .collect::<Vec<_>>(),
        )
        .bind(row_of(&|c| c.user_id.clone()))
        .bind(row_of(&|c| c.template_id.clone()))
        .bind(
            rows.iter()
                .map(|&n| written[n].1.content.template_version)
                .collect::<Vec<_>>(),
        )
        .bind(row_of(&|c| c.msg_type.clone()))
        .bind(
            rows.iter()
                .map(|&n| written[n].1.content.topic.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|&n| written[n].1.content.title.clone())
                .collect::<Vec<_>>(),
        )
        .bind(row_of(&|c| c.created_at.clone()))
        .bind(
            rows.iter()
                .map(|&n| written[n].1.content.expires_at)
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|&n| written[n].3).collect::<Vec<_>>())
        .bind(row_of(&|c| c.body_hash.clone()))
        .bind(
            rows.iter()
                .map(|&n| written[n].1.changed_at)
                .collect::<Vec<OffsetDateTime>>(),
        )
        .bind(each(&|w| w.2.clone()))
        .bind(written.iter().map(|w| w.3).collect::<Vec<_>>())
        .bind(
            written
                .iter()
                .map(|w| w.1.content.template_version)
                .collect::<Vec<_>>(),
        )
        .bind(each(&|w| w.1.content.body_hash.clone()))
        .bind(revisions.payload)
        .bind(revisions.rendering_hash)
        .bind(revisions.metadata_hash)
        .bind(revisions.metadata_at)
        .bind(written.iter().map(|w| w.1.changed_at).collect::<Vec<_>>())
        .bind(each(&|w| w.0.owner.partner_id.clone()))
        .bind(each(&|w| w.0.owner.company_id.clone()))
        .bind(each(&|w| w.1.content.user_id.clone()))
        .bind(each(&|w| w.1.content.template_id.clone()))
        .bind(
            written
                .iter()
                .map(|w| w.1.content.expires_at)
                .collect::<Vec<_>>(),
        )
        .bind(shared.rendering_hash)
        .bind(shared.title)
        .bind(shared.html)
        .bind(shared.text)
        .bind(shared.metadata_hash)
        .bind(shared.json)
        .fetch_one(&mut *tx)
        .await?;
    if changed as usize != rows.len() {
        // A locked row cannot vanish; should it, nothing of the batch is kept.
        tx.rollback().await?;
        return Err(sqlx::Error::RowNotFound);
    }
    tx.commit().await?;
    Ok(outcomes)
}
