//! Reading alerts, their revisions and the outbox back: an alert's row with its latest
//! revision's payload put back together from what `stored_once` stored once, and the
//! renderings the inbox shows.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::rows::{from_millis, parse_ts};
use crate::store::{
    AlertContent, AlertOwner, AlertRecord, OutboxEvent, Rendering, RevisionRecord,
    stored_once::put_back,
};

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
            payload: payload(row)?,
            rendering: rendering(row)?.into(),
            payload_metadata: None,
        },
        revision: row.get("revision")?,
        received_at: parse_ts(&row.get::<_, String>("received_at")?)?,
        updated_at: parse_ts(&row.get::<_, String>("updated_at")?)?,
        withdrawn_at: row
            .get::<_, Option<String>>("withdrawn_at")?
            .as_deref()
            .map(parse_ts)
            .transpose()?,
    })
}

/// A revision's rendering: in `renderings` (by hash), or in the revision's own columns when it
/// was written before renderings were shared.
pub(super) const RENDERING_COLUMNS: &str = "coalesce(g.title, r.rendered_title) AS rendered_title, \
     coalesce(g.html, r.rendered_html) AS rendered_html, \
     coalesce(g.text, r.rendered_text) AS rendered_text";
pub(super) const RENDERING_JOIN: &str = "LEFT JOIN renderings g ON g.hash = r.rendering_hash";

/// A revision's payload, its metadata document and where that goes back into it.
const PAYLOAD_COLUMNS: &str = "r.payload, r.metadata_at, m.json AS metadata_json";
const PAYLOAD_JOIN: &str = "LEFT JOIN metadata_documents m ON m.hash = r.metadata_hash";

/// The whole body of a revision: its payload with the metadata document put back, for
/// revisions that name one.
fn payload(row: &Row<'_>) -> rusqlite::Result<String> {
    put_back(
        row.get("payload")?,
        row.get("metadata_at")?,
        row.get("metadata_json")?,
    )
    .map_err(|why| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, why.into())
    })
}

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
        "SELECT a.*, {PAYLOAD_COLUMNS}, {RENDERING_COLUMNS} \
         FROM alerts a JOIN alert_revisions r \
         ON r.alert_id = a.id AND r.revision = a.revision {RENDERING_JOIN} {PAYLOAD_JOIN} \
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
        "SELECT r.revision, r.template_version, r.body_hash, {PAYLOAD_COLUMNS}, \
         {RENDERING_COLUMNS}, r.recorded_at FROM alert_revisions r {RENDERING_JOIN} \
         {PAYLOAD_JOIN} WHERE r.alert_id = ?1 \
         ORDER BY r.revision"
    ))?
    .query_map([alert_id], |row| {
        Ok(RevisionRecord {
            revision: row.get("revision")?,
            template_version: row.get("template_version")?,
            body_hash: row.get("body_hash")?,
            payload: payload(row)?,
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
    .query_map([after, limit], outbox_event)?
    .collect()
}

/// An outbox row (its common columns) as an event: the feed, the inbox's replay, downstream.
pub(super) fn outbox_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxEvent> {
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
}

pub(super) fn outbox_head(db: &Connection) -> rusqlite::Result<i64> {
    db.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM outbox")?
        .query_row([], |row| row.get(0))
}
