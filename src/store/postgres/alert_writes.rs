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

use std::collections::{HashMap, HashSet};

use sqlx::{PgPool, Row};
use time::OffsetDateTime;

use crate::store::{
    AlertChange, AlertContent, AlertSelector, AlertTarget, CreateOutcome, EVENT_ALERT_CREATED,
    EVENT_ALERT_UPDATED, NewAlert, UpdateOutcome,
};
use columns::{Revisions, Shared, store_shared};

/// An update applied by a batch: its target and change, the alert's id and its new revision.
type Written<'a> = (&'a AlertTarget, &'a AlertChange, String, i64);

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
pub(super) async fn update(
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
