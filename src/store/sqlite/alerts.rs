//! Alerts, their revisions and the outbox. Every change writes its outbox event in the same
//! transaction as the change itself: `create_many` and `update` run inside the transaction the
//! writer opened for their batch.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Row, ToSql, params, params_from_iter};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::rows::{from_millis, millis, parse_ts, ts};
use crate::store::{
    AlertChange, AlertContent, AlertOwner, AlertRecord, AlertSelector, AlertTarget, CreateOutcome,
    EVENT_ALERT_CREATED, EVENT_ALERT_UPDATED, NewAlert, OutboxEvent, Rendering, RevisionRecord,
    UpdateOutcome,
};

/// The chunk sizes multi-row statements are built for: few shapes, so that prepared statements
/// are reused, and few statements per batch.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

const ALERT_COLUMNS: &str = "id, partner_id, company_id, ext_ref, user_id, template_id, \
     template_version, msg_type, topic, title, created_at, expires_at, revision, body_hash, \
     received_at, updated_at";
const ALERT_VALUES: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)";
const REVISION_VALUES: &str = "(?, ?, ?, ?, ?, ?, ?)";

/// Creates alerts in arrival order, with a fixed number of statements per chunk of alerts
/// (alert rows, revisions, outbox events) rather than per alert. An extRef already taken —
/// also by an earlier alert of the same batch — answers `Existing`, as one at a time would.
pub(super) fn create_many(
    db: &Connection,
    alerts: &[&NewAlert],
) -> rusqlite::Result<Vec<CreateOutcome>> {
    let mut outcomes = Vec::with_capacity(alerts.len());
    let mut rest = alerts;
    while !rest.is_empty() {
        let size = CHUNKS
            .into_iter()
            .find(|size| rest.len() >= *size)
            .unwrap_or(1);
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let inserted = insert_rows(db, chunk)?;
        if !inserted.is_empty() {
            copy_into_history(db, chunk, &inserted)?;
        }
        for alert in chunk {
            outcomes.push(if inserted.contains(&alert.id) {
                CreateOutcome::Created
            } else {
                existing(db, alert)?
            });
        }
    }
    Ok(outcomes)
}

/// Inserts the chunk's alert rows; the unique constraint, not a prior look-up, decides whether
/// an extRef is taken. Returns the ids inserted.
fn insert_rows(db: &Connection, chunk: &[&NewAlert]) -> rusqlite::Result<HashSet<String>> {
    let sql = format!(
        "INSERT INTO alerts ({ALERT_COLUMNS}) VALUES {} \
         ON CONFLICT (partner_id, company_id, ext_ref) DO NOTHING RETURNING id",
        vec![ALERT_VALUES; chunk.len()].join(", ")
    );
    let derived: Vec<(i64, String)> = chunk
        .iter()
        .map(|a| (millis(a.content.expires_at), ts(a.received_at)))
        .collect();
    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 15);
    for (alert, (expires_at, received_at)) in chunk.iter().zip(&derived) {
        let c = &alert.content;
        values.extend_from_slice(&[
            &alert.id,
            &alert.owner.partner_id,
            &alert.owner.company_id,
            &c.ext_ref,
            &c.user_id,
            &c.template_id,
            &c.template_version,
            &c.msg_type,
            &c.topic,
            &c.title,
            &c.created_at,
            expires_at,
            &c.body_hash,
            received_at,
            received_at,
        ]);
    }
    let mut statement = db.prepare_cached(&sql)?;
    statement
        .query_map(params_from_iter(values), |row| row.get::<_, String>(0))?
        .collect()
}

/// The first revision (which holds the body) and the `alert.created` event of each inserted
/// alert: one statement each for the chunk when every alert of it was new.
fn copy_into_history(
    db: &Connection,
    chunk: &[&NewAlert],
    inserted: &HashSet<String>,
) -> rusqlite::Result<()> {
    let new: Vec<&NewAlert> = chunk
        .iter()
        .copied()
        .filter(|a| inserted.contains(&a.id))
        .collect();
    // Multi-row statements only in the chunk shapes, so that prepared statements are reused.
    let groups: Vec<&[&NewAlert]> = if new.len() == chunk.len() {
        vec![&new[..]]
    } else {
        new.chunks(1).collect()
    };
    for group in groups {
        let recorded: Vec<String> = group.iter().map(|a| ts(a.received_at)).collect();
        let renderings = group
            .iter()
            .map(|a| store_rendering(db, &a.content.rendering))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut values: Vec<&dyn ToSql> = Vec::with_capacity(group.len() * 7);
        for ((alert, recorded_at), rendering) in group.iter().zip(&recorded).zip(&renderings) {
            let c = &alert.content;
            values.extend_from_slice(&[
                &alert.id,
                &1_i64,
                &c.template_version,
                &c.body_hash,
                &c.payload,
                rendering,
                recorded_at,
            ]);
        }
        let placeholders = vec!["?"; group.len()].join(", ");
        db.prepare_cached(&format!(
            "INSERT INTO alert_revisions (alert_id, revision, template_version, body_hash, \
             payload, rendering_hash, recorded_at) VALUES {}",
            vec![REVISION_VALUES; group.len()].join(", ")
        ))?
        .execute(params_from_iter(values))?;
        db.prepare_cached(&format!(
            "INSERT INTO outbox (event_type, alert_id, revision, partner_id, company_id, user_id, \
             occurred_at) SELECT '{EVENT_ALERT_CREATED}', id, 1, partner_id, company_id, user_id, \
             received_at FROM alerts WHERE id IN ({placeholders}) ORDER BY id"
        ))?
        .execute(params_from_iter(group.iter().map(|a| &a.id)))?;
    }
    Ok(())
}

fn existing(db: &Connection, alert: &NewAlert) -> rusqlite::Result<CreateOutcome> {
    let (alert_id, body_hash): (String, String) = db
        .prepare_cached(
            "SELECT id, body_hash FROM alerts WHERE partner_id = ?1 AND company_id = ?2 \
             AND ext_ref = ?3",
        )?
        .query_row(
            params![
                alert.owner.partner_id,
                alert.owner.company_id,
                alert.content.ext_ref
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
    Ok(CreateOutcome::Existing {
        alert_id,
        same_body: body_hash == alert.content.body_hash,
    })
}

pub(super) fn update(
    db: &Connection,
    target: &AlertTarget,
    change: &AlertChange,
) -> rusqlite::Result<UpdateOutcome> {
    let (column, value) = match &target.selector {
        AlertSelector::Id(id) => ("id", id),
        AlertSelector::ExtRef(ext_ref) => ("ext_ref", ext_ref),
    };
    let current: Option<(String, String, i64, String)> = db
        .prepare_cached(&format!(
            "SELECT id, ext_ref, revision, body_hash FROM alerts \
             WHERE partner_id = ?1 AND company_id = ?2 AND {column} = ?3"
        ))?
        .query_row(
            params![target.owner.partner_id, target.owner.company_id, value],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let Some((alert_id, ext_ref, revision, body_hash)) = current else {
        return Ok(UpdateOutcome::NotFound);
    };
    let c = &change.content;
    if ext_ref != c.ext_ref {
        return Ok(UpdateOutcome::ExtRefMismatch { alert_id });
    }
    if body_hash == c.body_hash {
        return Ok(UpdateOutcome::Unchanged { alert_id, revision });
    }

    let revision = revision + 1;
    let changed_at = ts(change.changed_at);
    db.prepare_cached(
        "UPDATE alerts SET user_id = ?1, template_id = ?2, template_version = ?3, msg_type = ?4, \
         topic = ?5, title = ?6, created_at = ?7, expires_at = ?8, revision = ?9, body_hash = ?10, \
         updated_at = ?11, expired_at = NULL WHERE id = ?12",
    )?
    .execute(params![
        c.user_id,
        c.template_id,
        c.template_version,
        c.msg_type,
        c.topic,
        c.title,
        c.created_at,
        millis(c.expires_at),
        revision,
        c.body_hash,
        changed_at,
        alert_id,
    ])?;
    let rendering = store_rendering(db, &c.rendering)?;
    db.prepare_cached(
        "INSERT INTO alert_revisions (alert_id, revision, template_version, body_hash, payload, \
         rendering_hash, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        alert_id,
        revision,
        c.template_version,
        c.body_hash,
        c.payload,
        rendering,
        changed_at
    ])?;
    announce(
        db,
        EVENT_ALERT_UPDATED,
        &alert_id,
        revision,
        &target.owner,
        &c.user_id,
        change.changed_at,
    )?;
    Ok(UpdateOutcome::Updated { alert_id, revision })
}

pub(super) fn announce(
    db: &Connection,
    event_type: &str,
    alert_id: &str,
    revision: i64,
    owner: &AlertOwner,
    user_id: &str,
    at: OffsetDateTime,
) -> rusqlite::Result<()> {
    db.prepare_cached(
        "INSERT INTO outbox (event_type, alert_id, revision, partner_id, company_id, user_id, \
         occurred_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        event_type,
        alert_id,
        revision,
        owner.partner_id,
        owner.company_id,
        user_id,
        ts(at)
    ])?;
    Ok(())
}

fn alert_row(row: &Row<'_>) -> rusqlite::Result<AlertRecord> {
    Ok(AlertRecord {
        id: row.get("id")?,
        owner: AlertOwner {
            partner_id: row.get("partner_id")?,
            company_id: row.get("company_id")?,
        },
        content: AlertContent {
            ext_ref: row.get("ext_ref")?,
            user_id: row.get("user_id")?,
            template_id: row.get("template_id")?,
            template_version: row.get("template_version")?,
            msg_type: row.get("msg_type")?,
            topic: row.get("topic")?,
            title: row.get("title")?,
            created_at: row.get("created_at")?,
            expires_at: from_millis(row.get("expires_at")?)?,
            body_hash: row.get("body_hash")?,
            payload: row.get("payload")?,
            rendering: rendering(row)?,
        },
        revision: row.get("revision")?,
        received_at: parse_ts(&row.get::<_, String>("received_at")?)?,
        updated_at: parse_ts(&row.get::<_, String>("updated_at")?)?,
    })
}

/// Stores a rendering unless an identical one is stored; returns its hash, which the revision
/// names.
fn store_rendering(db: &Connection, rendering: &Rendering) -> rusqlite::Result<Vec<u8>> {
    let mut hasher = Sha256::new();
    for part in [&rendering.title, &rendering.html, &rendering.text] {
        // Length-prefixed, so that no two different renderings hash the same bytes.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let hash = hasher.finalize().to_vec();
    db.prepare_cached(
        "INSERT OR IGNORE INTO renderings (hash, title, html, text) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        hash,
        rendering.title,
        rendering.html,
        rendering.text
    ])?;
    Ok(hash)
}

/// A revision's rendering: in `renderings` (by hash), or in the revision's own columns when it
/// was written before renderings were shared.
pub(super) const RENDERING_COLUMNS: &str = "coalesce(g.title, r.rendered_title) AS rendered_title, \
     coalesce(g.html, r.rendered_html) AS rendered_html, \
     coalesce(g.text, r.rendered_text) AS rendered_text";
pub(super) const RENDERING_JOIN: &str = "LEFT JOIN renderings g ON g.hash = r.rendering_hash";

/// The `rendered_*` columns of a revision.
pub(super) fn rendering(row: &Row<'_>) -> rusqlite::Result<Rendering> {
    Ok(Rendering {
        title: row.get("rendered_title")?,
        html: row.get("rendered_html")?,
        text: row.get("rendered_text")?,
    })
}

pub(super) fn find(
    db: &Connection,
    owner: &AlertOwner,
    alert_id: &str,
) -> rusqlite::Result<Option<AlertRecord>> {
    db.prepare_cached(&format!(
        "SELECT a.*, r.payload, {RENDERING_COLUMNS} \
         FROM alerts a JOIN alert_revisions r \
         ON r.alert_id = a.id AND r.revision = a.revision {RENDERING_JOIN} \
         WHERE a.id = ?1 AND a.partner_id = ?2 AND a.company_id = ?3"
    ))?
    .query_row(
        params![alert_id, owner.partner_id, owner.company_id],
        alert_row,
    )
    .optional()
}

pub(super) fn revisions(db: &Connection, alert_id: &str) -> rusqlite::Result<Vec<RevisionRecord>> {
    db.prepare_cached(&format!(
        "SELECT r.revision, r.template_version, r.body_hash, r.payload, {RENDERING_COLUMNS}, \
         r.recorded_at FROM alert_revisions r {RENDERING_JOIN} WHERE r.alert_id = ?1 \
         ORDER BY r.revision"
    ))?
    .query_map([alert_id], |row| {
        Ok(RevisionRecord {
            revision: row.get("revision")?,
            template_version: row.get("template_version")?,
            body_hash: row.get("body_hash")?,
            payload: row.get("payload")?,
            rendering: rendering(row)?,
            recorded_at: parse_ts(&row.get::<_, String>("recorded_at")?)?,
        })
    })?
    .collect()
}

pub(super) fn outbox_after(
    db: &Connection,
    after: i64,
    limit: i64,
) -> rusqlite::Result<Vec<OutboxEvent>> {
    db.prepare_cached(
        "SELECT id, event_type, alert_id, revision, partner_id, company_id, user_id, occurred_at \
         FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?
    .query_map([after, limit], |row| {
        Ok(OutboxEvent {
            id: row.get("id")?,
            event_type: row.get("event_type")?,
            alert_id: row.get("alert_id")?,
            revision: row.get("revision")?,
            partner_id: row.get("partner_id")?,
            company_id: row.get("company_id")?,
            user_id: row.get("user_id")?,
            occurred_at: parse_ts(&row.get::<_, String>("occurred_at")?)?,
        })
    })?
    .collect()
}

pub(super) fn outbox_head(db: &Connection) -> rusqlite::Result<i64> {
    db.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM outbox")?
        .query_row([], |row| row.get(0))
}
