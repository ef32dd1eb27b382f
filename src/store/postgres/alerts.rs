//! Alerts, their revisions and the outbox: reads, and the event every change writes in its own
//! transaction. Creates and updates are written in batches (`alert_writes.rs`).

use sqlx::{PgPool, Postgres, Row, Transaction, postgres::PgRow};
use time::OffsetDateTime;

use crate::store::{
    AlertContent, AlertOwner, AlertRecord, OutboxEvent, Rendering, RevisionRecord,
    stored_once::put_back,
};

pub(super) async fn announce(
    tx: &mut Transaction<'_, Postgres>,
    event_type: &str,
    alert_id: &str,
    revision: i64,
    owner: &AlertOwner,
    user_id: &str,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    // The alert's template and expiry as of the event, for downstream consumers. This insert
    // comes after the transaction's first write (the alert's row), so the transaction has its
    // id before it takes an outbox id: the publisher's horizon relies on it (downstream.rs).
    let written = sqlx::query(
        "INSERT INTO outbox (event_type, alert_id, revision, partner_id, company_id, user_id, \
         occurred_at, template_id, expires_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, template_id, expires_at FROM alerts WHERE id = $2",
    )
    .bind(event_type)
    .bind(alert_id)
    .bind(revision)
    .bind(&owner.partner_id)
    .bind(&owner.company_id)
    .bind(user_id)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    if written.rows_affected() != 1 {
        // An event about no alert would be lost silently: fail the change instead.
        return Err(sqlx::Error::RowNotFound);
    }
    Ok(())
}

fn alert_row(row: &PgRow) -> Result<AlertRecord, sqlx::Error> {
    Ok(AlertRecord {
        id: row.try_get("id")?,
        owner: AlertOwner {
            partner_id: row.try_get("partner_id")?,
            company_id: row.try_get("company_id")?,
        },
        content: AlertContent {
            ext_ref: row.try_get("ext_ref")?,
            user_id: row.try_get("user_id")?,
            template_id: row.try_get("template_id")?,
            template_version: row.try_get("template_version")?,
            msg_type: row.try_get("msg_type")?,
            topic: row.try_get("topic")?,
            title: row.try_get("title")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            body_hash: row.try_get("body_hash")?,
            payload: payload(row)?,
            rendering: rendering(row)?.into(),
            payload_metadata: None,
        },
        revision: row.try_get("revision")?,
        received_at: row.try_get("received_at")?,
        updated_at: row.try_get("updated_at")?,
        withdrawn_at: row.try_get("withdrawn_at")?,
    })
}

/// A revision's rendering: in `renderings` (by hash), or in the revision's own columns when it
/// was written before renderings were shared (migration 0012).
pub(super) const RENDERING_COLUMNS: &str = "coalesce(g.title, r.rendered_title) AS rendered_title, \
     coalesce(g.html, r.rendered_html) AS rendered_html, \
     coalesce(g.text, r.rendered_text) AS rendered_text";
pub(super) const RENDERING_JOIN: &str = "LEFT JOIN renderings g ON g.hash = r.rendering_hash";

/// A revision's payload, its metadata document and where that goes back into it.
const PAYLOAD_COLUMNS: &str = "r.payload, r.metadata_at, m.json AS metadata_json";
const PAYLOAD_JOIN: &str = "LEFT JOIN metadata_documents m ON m.hash = r.metadata_hash";

/// The whole body of a revision: its payload with the metadata document put back, for
/// revisions that name one.
fn payload(row: &PgRow) -> Result<String, sqlx::Error> {
    let at: Option<i32> = row.try_get("metadata_at")?;
    put_back(
        row.try_get("payload")?,
        at.map(i64::from),
        row.try_get("metadata_json")?,
    )
    .map_err(|why| sqlx::Error::Decode(why.into()))
}

/// The `rendered_*` columns of a revision.
pub(super) fn rendering(row: &PgRow) -> Result<Rendering, sqlx::Error> {
    Ok(Rendering {
        title: row.try_get("rendered_title")?,
        html: row.try_get("rendered_html")?,
        text: row.try_get("rendered_text")?,
    })
}

pub(super) async fn find(
    pool: &PgPool,
    owner: &AlertOwner,
    alert_id: &str,
) -> Result<Option<AlertRecord>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT a.*, {PAYLOAD_COLUMNS}, {RENDERING_COLUMNS} \
             FROM alerts a JOIN alert_revisions r \
             ON r.alert_id = a.id AND r.revision = a.revision {RENDERING_JOIN} {PAYLOAD_JOIN} \
             WHERE a.id = $1 AND a.partner_id = $2 AND a.company_id = $3"
    ))
    .bind(alert_id)
    .bind(&owner.partner_id)
    .bind(&owner.company_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(alert_row).transpose()
}

pub(super) async fn revisions(
    pool: &PgPool,
    alert_id: &str,
) -> Result<Vec<RevisionRecord>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT r.revision, r.template_version, r.body_hash, {PAYLOAD_COLUMNS}, \
         {RENDERING_COLUMNS}, r.recorded_at FROM alert_revisions r {RENDERING_JOIN} \
         {PAYLOAD_JOIN} WHERE r.alert_id = $1 ORDER BY r.revision"
    ))
    .bind(alert_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RevisionRecord {
                revision: row.try_get("revision")?,
                template_version: row.try_get("template_version")?,
                body_hash: row.try_get("body_hash")?,
                payload: payload(row)?,
                rendering: rendering(row)?,
                recorded_at: row.try_get("recorded_at")?,
            })
        })
        .collect()
}

pub(super) async fn outbox_after(
    pool: &PgPool,
    after: i64,
    limit: i64,
) -> Result<Vec<OutboxEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, event_type, alert_id, revision, partner_id, company_id, user_id, occurred_at \
         FROM outbox WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(outbox_event).collect()
}

/// An outbox row (its common columns) as an event: the feed, the inbox's replay, downstream.
pub(super) fn outbox_event(row: &PgRow) -> Result<OutboxEvent, sqlx::Error> {
    Ok(OutboxEvent {
        id: row.try_get("id")?,
        event_type: row.try_get("event_type")?,
        alert_id: row.try_get("alert_id")?,
        revision: row.try_get("revision")?,
        partner_id: row.try_get("partner_id")?,
        company_id: row.try_get("company_id")?,
        user_id: row.try_get("user_id")?,
        occurred_at: row.try_get("occurred_at")?,
    })
}

pub(super) async fn outbox_head(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM outbox")
        .fetch_one(pool)
        .await
}
