//! Writing alerts, their revisions and the outbox (`alert_reads.rs` reads them back). Every
//! change writes its outbox event in the same transaction as the change itself: `create` and
//! `update` run inside the transaction the writer opened for their batch.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, ToSql, params, params_from_iter};
use time::OffsetDateTime;

use super::{
    ext_refs::{ExtRefIndex, ext_ref_key},
    rows::{millis, ts},
};
use crate::store::{
    AlertChange, AlertContent, AlertOwner, AlertSelector, AlertTarget, CreateOutcome,
    EVENT_ALERT_CREATED, EVENT_ALERT_UPDATED, NewAlert, Rendering, UpdateOutcome,
    stored_once::{rendering_hash, split_body},
};

// The insert and the update of an alert row take its content columns first, as ?1-?9
// (`execute_with_content`).
const INSERT_ALERT: &str = "INSERT INTO alerts (user_id, template_id, template_version, \
     msg_type, topic, title, created_at, expires_at, body_hash, id, partner_id, company_id, \
     ext_ref, revision, received_at, updated_at, ext_ref_key) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1, ?14, ?14, ?15)";
const UPDATE_ALERT: &str = "UPDATE alerts SET user_id = ?1, template_id = ?2, \
     template_version = ?3, msg_type = ?4, topic = ?5, title = ?6, created_at = ?7, \
     expires_at = ?8, body_hash = ?9, revision = ?10, updated_at = ?11, expired_at = NULL \
     WHERE id = ?12";
const INSERT_REVISION: &str = "INSERT INTO alert_revisions (alert_id, revision, \
     template_version, body_hash, payload, rendering_hash, recorded_at, metadata_hash, \
     metadata_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// The renderings and metadata documents stored so far by the transaction under way, so that
/// a fan-out of one offer (one rendering and one metadata document for many alerts) stores each
/// once per batch. Lives no longer than its transaction: after a rollback nothing it remembers
/// would be there.
#[derive(Default)]
pub(super) struct SharedContent {
    renderings: Vec<(Arc<Rendering>, Vec<u8>)>,
    metadata: Vec<[u8; 32]>,
}

/// Distinct renderings (and metadata documents) remembered per transaction; a batch rarely
/// holds more than a few offers.
const REMEMBERED: usize = 8;

impl SharedContent {
    /// Stores `rendering` unless an identical one is stored; returns its hash, which the
    /// revision names.
    fn rendering(
        &mut self,
        db: &Connection,
        rendering: &Arc<Rendering>,
    ) -> rusqlite::Result<Vec<u8>> {
        // Alerts of a fan-out share one rendering (the same `Arc`, compared by address first).
        if let Some((_, hash)) = self.renderings.iter().find(|(known, _)| known == rendering) {
            return Ok(hash.clone());
        }
        let hash = rendering_hash(rendering);
        db.prepare_cached(
            "INSERT OR IGNORE INTO renderings (hash, title, html, text) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            hash,
            rendering.title,
            rendering.html,
            rendering.text
        ])?;
        remember(&mut self.renderings, (Arc::clone(rendering), hash.clone()));
        Ok(hash)
    }

    /// Stores the metadata document `json` under `digest` (its SHA-256) unless it is stored.
    fn metadata(&mut self, db: &Connection, digest: &[u8; 32], json: &str) -> rusqlite::Result<()> {
        if self.metadata.contains(digest) {
            return Ok(());
        }
        db.prepare_cached("INSERT OR IGNORE INTO metadata_documents (hash, json) VALUES (?1, ?2)")?
            .execute(params![&digest[..], json])?;
        remember(&mut self.metadata, *digest);
        Ok(())
    }
}

/// Adds `item` to the `REMEMBERED` most recent, forgetting the oldest.
fn remember<T>(recent: &mut Vec<T>, item: T) {
    if recent.len() == REMEMBERED {
        recent.remove(0);
    }
    recent.push(item);
}

/// Creates an alert with its first revision (which holds the body) and its `alert.created`
/// event. An extRef already taken — also by an earlier alert of the same batch — answers
/// `Existing` (the writer's extRef index finds it: `ext_refs.rs`).
///
/// Single-row prepared statements, one per row, rather than multi-row statements: SQLite keeps
/// a statement journal (a copy of every page a statement touches) for a statement that writes
/// several rows and may fail half-way, and that copying cost more than the statements saved.
pub(super) fn create(
    db: &Connection,
    alert: &NewAlert,
    shared: &mut SharedContent,
    ext_refs: &mut ExtRefIndex,
) -> rusqlite::Result<CreateOutcome> {
    let c = &alert.content;
    let owner = &alert.owner;
    let key = ext_ref_key(&owner.partner_id, &owner.company_id, &c.ext_ref);
    if let Some(found) = ext_refs.find(db, &key)?
        && let Some(existing) = existing(db, found, alert)?
    {
        return Ok(existing);
    }
    let received_at = ts(alert.received_at);
    execute_with_content(
        db,
        INSERT_ALERT,
        c,
        &[
            &alert.id,
            &owner.partner_id,
            &owner.company_id,
            &c.ext_ref,
            &received_at,
            &&key[..],
        ],
    )?;
    ext_refs.stage(key, db.last_insert_rowid());
    let revision = Revision {
        alert_id: &alert.id,
        number: 1,
        owner,
        content: c,
        at: alert.received_at,
    };
    revision.record(db, EVENT_ALERT_CREATED, shared)?;
    Ok(CreateOutcome::Created)
}

/// Runs `sql` with the alert row's content columns as ?1-?9 and `rest` after them: the insert
/// and the update write the same columns, named in one place.
fn execute_with_content(
    db: &Connection,
    sql: &str,
    c: &AlertContent,
    rest: &[&dyn ToSql],
) -> rusqlite::Result<usize> {
    let expires_at = millis(c.expires_at);
    let content: [&dyn ToSql; 9] = [
        &c.user_id,
        &c.template_id,
        &c.template_version,
        &c.msg_type,
        &c.topic,
        &c.title,
        &c.created_at,
        &expires_at,
        &c.body_hash,
    ];
    db.prepare_cached(sql)?
        .execute(params_from_iter(content.iter().chain(rest)))
}

/// A revision being written: its row (which holds the body and names the rendering) and the
/// outbox event announcing it go together, for a create and an update alike.
struct Revision<'a> {
    alert_id: &'a str,
    number: i64,
    owner: &'a AlertOwner,
    content: &'a AlertContent,
    at: OffsetDateTime,
}

impl Revision<'_> {
    fn record(
        &self,
        db: &Connection,
        event_type: &str,
        shared: &mut SharedContent,
    ) -> rusqlite::Result<()> {
        let c = self.content;
        let rendering = shared.rendering(db, &c.rendering)?;
        // The body without its metadata, which is stored once and named by its digest.
        let body = split_body(c);
        let (metadata_hash, metadata_at) = match body.metadata {
            Some((digest, json, at)) => {
                shared.metadata(db, digest, json)?;
                (Some(&digest[..]), Some(at))
            }
            None => (None, None),
        };
        db.prepare_cached(INSERT_REVISION)?.execute(params![
            self.alert_id,
            self.number,
            c.template_version,
            c.body_hash,
            body.payload,
            rendering,
            ts(self.at),
            metadata_hash,
            metadata_at,
        ])?;
        announce(
            db,
            event_type,
            self.alert_id,
            self.number,
            self.owner,
            &c.user_id,
            self.at,
        )
    }
}

/// The alert `seq` if it is the one `alert`'s extRef names (an index entry may outlive a purged
/// alert), as the outcome of creating `alert` again.
fn existing(
    db: &Connection,
    seq: i64,
    alert: &NewAlert,
) -> rusqlite::Result<Option<CreateOutcome>> {
    let found: Option<(String, String, Option<String>)> = db
        .prepare_cached(
            "SELECT id, body_hash, withdrawn_at FROM alerts WHERE seq = ?1 \
             AND partner_id = ?2 AND company_id = ?3 AND ext_ref = ?4",
        )?
        .query_row(
            params![
                seq,
                alert.owner.partner_id,
                alert.owner.company_id,
                alert.content.ext_ref
            ],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    Ok(found.map(|(alert_id, body_hash, withdrawn_at)| {
        let same_body = body_hash == alert.content.body_hash;
        match withdrawn_at {
            Some(_) => CreateOutcome::Withdrawn {
                alert_id,
                same_body,
            },
            None => CreateOutcome::Existing {
                alert_id,
                same_body,
            },
        }
    }))
}

pub(super) fn update(
    db: &Connection,
    target: &AlertTarget,
    change: &AlertChange,
    shared: &mut SharedContent,
    ext_refs: &ExtRefIndex,
) -> rusqlite::Result<UpdateOutcome> {
    let owner = &target.owner;
    // By extRef, the index names the row, which must still be that extRef's.
    let (condition, value, seq) = match &target.selector {
        // One parameter list for both: `?4`, the seq, is NULL when the id selects.
        AlertSelector::Id(id) => ("id = ?3 AND ?4 IS NULL", id, None),
        AlertSelector::ExtRef(ext_ref) => {
            let key = ext_ref_key(&owner.partner_id, &owner.company_id, ext_ref);
            match ext_refs.find(db, &key)? {
                Some(seq) => ("ext_ref = ?3 AND seq = ?4", ext_ref, Some(seq)),
                None => return Ok(UpdateOutcome::NotFound),
            }
        }
    };
    type Current = (String, String, i64, String, Option<String>);
    let current: Option<Current> = db
        .prepare_cached(&format!(
            "SELECT id, ext_ref, revision, body_hash, withdrawn_at FROM alerts \
             WHERE partner_id = ?1 AND company_id = ?2 AND {condition}"
        ))?
        .query_row(
            params![owner.partner_id, owner.company_id, value, seq],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )
        .optional()?;
    let Some((alert_id, ext_ref, revision, body_hash, withdrawn_at)) = current else {
        return Ok(UpdateOutcome::NotFound);
    };
    // Withdrawn outranks the body's faults: no update of this alert can succeed.
    if withdrawn_at.is_some() {
        return Ok(UpdateOutcome::Withdrawn { alert_id });
    }
    let c = &change.content;
    if ext_ref != c.ext_ref {
        return Ok(UpdateOutcome::ExtRefMismatch { alert_id });
    }
    if body_hash == c.body_hash {
        return Ok(UpdateOutcome::Unchanged { alert_id, revision });
    }

    let revision = revision + 1;
    let changed_at = ts(change.changed_at);
    execute_with_content(db, UPDATE_ALERT, c, &[&revision, &changed_at, &alert_id])?;
    Revision {
        alert_id: &alert_id,
        number: revision,
        owner: &target.owner,
        content: c,
        at: change.changed_at,
    }
    .record(db, EVENT_ALERT_UPDATED, shared)?;
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
    // The alert's template and expiry as of the event, for downstream consumers; and when the
    // event was recorded, which the publisher's lag counts from.
    let written = db
        .prepare_cached(
            "INSERT INTO outbox (event_type, alert_id, revision, partner_id, company_id, \
             user_id, occurred_at, template_id, expires_at, recorded_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, template_id, expires_at, \
             CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM alerts WHERE id = ?2",
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
    if written != 1 {
        // An event about no alert would be lost silently: fail the change instead.
        return Err(rusqlite::Error::QueryReturnedNoRows);
    }
    Ok(())
}
