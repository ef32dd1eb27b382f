//! Alerts, their revisions and the outbox. Every change writes its outbox event in the same
//! transaction as the change itself: `create` and `update` run inside the transaction (or
//! savepoint) the group-commit writer opened for them.

use std::collections::HashSet;

use sqlx::{Row, SqliteConnection, SqlitePool, sqlite::SqliteRow};
use time::OffsetDateTime;

use super::rows::{from_millis, millis, parse_ts, ts};
use crate::store::{
    AlertChange, AlertContent, AlertOwner, AlertRecord, AlertSelector, AlertTarget, CreateOutcome,
    EVENT_ALERT_CREATED, EVENT_ALERT_UPDATED, NewAlert, OutboxEvent, RevisionRecord, UpdateOutcome,
};

/// The batch sizes multi-row statements are built for: few shapes, so that prepared
/// statements are reused, and few statements per batch.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

const ALERT_COLUMNS: &str = "id, partner_id, company_id, ext_ref, user_id, template_id, \
     template_version, msg_type, topic, title, created_at, expires_at, revision, body_hash, \
     payload, received_at, updated_at";
const ALERT_VALUES: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)";

/// Creates alerts in arrival order, with a fixed number of statements per chunk of alerts
/// (alert rows, revisions, outbox events) rather than per alert. An extRef already taken —
/// also by an earlier alert of the same batch — answers `Existing`, as one at a time would.
pub(super) async fn create_many(
    tx: &mut SqliteConnection,
    alerts: &[&NewAlert],
) -> Result<Vec<CreateOutcome>, sqlx::Error> {
    let mut outcomes = Vec::with_capacity(alerts.len());
    let mut rest = alerts;
    while !rest.is_empty() {
        let size = CHUNKS
            .into_iter()
            .find(|size| rest.len() >= *size)
            .unwrap_or(1);
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let inserted = insert_rows(tx, chunk).await?;
        if !inserted.is_empty() {
            copy_into_history(tx, chunk, &inserted).await?;
        }
        for alert in chunk {
            outcomes.push(if inserted.contains(&alert.id) {
                CreateOutcome::Created
            } else {
                existing(tx, alert).await?
            });
        }
    }
    Ok(outcomes)
}

/// Inserts the chunk's alert rows; the unique constraint, not a prior look-up, decides whether
/// an extRef is taken. Returns the ids inserted.
async fn insert_rows(
    tx: &mut SqliteConnection,
    chunk: &[&NewAlert],
) -> Result<HashSet<String>, sqlx::Error> {
    let sql = format!(
        "INSERT INTO alerts ({ALERT_COLUMNS}) VALUES {} \
         ON CONFLICT (partner_id, company_id, ext_ref) DO NOTHING RETURNING id",
        vec![ALERT_VALUES; chunk.len()].join(", ")
    );
    let mut query = sqlx::query_scalar::<_, String>(&sql);
    for alert in chunk {
        let c = &alert.content;
        let received_at = ts(alert.received_at);
        query = query
            .bind(&alert.id)
            .bind(&alert.owner.partner_id)
            .bind(&alert.owner.company_id)
            .bind(&c.ext_ref)
            .bind(&c.user_id)
            .bind(&c.template_id)
            .bind(c.template_version)
            .bind(&c.msg_type)
            .bind(&c.topic)
            .bind(&c.title)
            .bind(&c.created_at)
            .bind(millis(c.expires_at))
            .bind(&c.body_hash)
            .bind(&c.payload)
            .bind(received_at.clone())
            .bind(received_at);
    }
    Ok(query.fetch_all(&mut *tx).await?.into_iter().collect())
}

/// The first revision and the `alert.created` event of each inserted alert, copied from the
/// rows just written (the payload is not sent to SQLite twice).
async fn copy_into_history(
    tx: &mut SqliteConnection,
    chunk: &[&NewAlert],
    inserted: &HashSet<String>,
) -> Result<(), sqlx::Error> {
    // The IN list keeps the chunk's shape (padded with a repeated id) so statements are reused.
    let ids: Vec<&str> = chunk
        .iter()
        .map(|a| a.id.as_str())
        .filter(|id| inserted.contains(*id))
        .collect();
    let placeholders = vec!["?"; chunk.len()].join(", ");
    let statements = [
        format!(
            "INSERT INTO alert_revisions (alert_id, revision, template_version, body_hash, payload, \
             recorded_at) SELECT id, 1, template_version, body_hash, payload, received_at \
             FROM alerts WHERE id IN ({placeholders})"
        ),
        format!(
            "INSERT INTO outbox (event_type, alert_id, revision, partner_id, company_id, user_id, \
             occurred_at) SELECT '{EVENT_ALERT_CREATED}', id, 1, partner_id, company_id, user_id, \
             received_at FROM alerts WHERE id IN ({placeholders}) ORDER BY id"
        ),
    ];
    for sql in &statements {
        let mut query = sqlx::query(sql);
        for index in 0..chunk.len() {
            query = query.bind(ids.get(index).unwrap_or(&ids[0]).to_string());
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

async fn existing(
    tx: &mut SqliteConnection,
    alert: &NewAlert,
) -> Result<CreateOutcome, sqlx::Error> {
    let (alert_id, body_hash): (String, String) = sqlx::query_as(
        "SELECT id, body_hash FROM alerts WHERE partner_id = ? AND company_id = ? AND ext_ref = ?",
    )
    .bind(&alert.owner.partner_id)
    .bind(&alert.owner.company_id)
    .bind(&alert.content.ext_ref)
    .fetch_one(&mut *tx)
    .await?;
    Ok(CreateOutcome::Existing {
        alert_id,
        same_body: body_hash == alert.content.body_hash,
    })
}

pub(super) async fn update(
    tx: &mut SqliteConnection,
    target: &AlertTarget,
    change: &AlertChange,
) -> Result<UpdateOutcome, sqlx::Error> {
    let (column, value) = match &target.selector {
        AlertSelector::Id(id) => ("id", id),
        AlertSelector::ExtRef(ext_ref) => ("ext_ref", ext_ref),
    };
    let current: Option<(String, String, i64, String)> = sqlx::query_as(&format!(
        "SELECT id, ext_ref, revision, body_hash FROM alerts \
         WHERE partner_id = ? AND company_id = ? AND {column} = ?"
    ))
    .bind(&target.owner.partner_id)
    .bind(&target.owner.company_id)
    .bind(value)
    .fetch_optional(&mut *tx)
    .await?;
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
    sqlx::query(
        "UPDATE alerts SET user_id = ?, template_id = ?, template_version = ?, msg_type = ?, \
         topic = ?, title = ?, created_at = ?, expires_at = ?, revision = ?, body_hash = ?, \
         payload = ?, updated_at = ? WHERE id = ?",
    )
    .bind(&c.user_id)
    .bind(&c.template_id)
    .bind(c.template_version)
    .bind(&c.msg_type)
    .bind(&c.topic)
    .bind(&c.title)
    .bind(&c.created_at)
    .bind(millis(c.expires_at))
    .bind(revision)
    .bind(&c.body_hash)
    .bind(&c.payload)
    .bind(ts(change.changed_at))
    .bind(&alert_id)
    .execute(&mut *tx)
    .await?;
    record_revision(tx, &alert_id, revision, c, change.changed_at).await?;
    announce(
        tx,
        EVENT_ALERT_UPDATED,
        &alert_id,
        revision,
        &target.owner,
        &c.user_id,
        change.changed_at,
    )
    .await?;
    Ok(UpdateOutcome::Updated { alert_id, revision })
}

async fn record_revision(
    tx: &mut SqliteConnection,
    alert_id: &str,
    revision: i64,
    content: &AlertContent,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alert_revisions (alert_id, revision, template_version, body_hash, payload, \
         recorded_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(alert_id)
    .bind(revision)
    .bind(content.template_version)
    .bind(&content.body_hash)
    .bind(&content.payload)
    .bind(ts(at))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn announce(
    tx: &mut SqliteConnection,
    event_type: &str,
    alert_id: &str,
    revision: i64,
    owner: &AlertOwner,
    user_id: &str,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (event_type, alert_id, revision, partner_id, company_id, user_id, \
         occurred_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(event_type)
    .bind(alert_id)
    .bind(revision)
    .bind(&owner.partner_id)
    .bind(&owner.company_id)
    .bind(user_id)
    .bind(ts(at))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn alert_row(row: &SqliteRow) -> Result<AlertRecord, sqlx::Error> {
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
            expires_at: from_millis(row.try_get("expires_at")?)?,
            body_hash: row.try_get("body_hash")?,
            payload: row.try_get("payload")?,
        },
        revision: row.try_get("revision")?,
        received_at: parse_ts(row.try_get("received_at")?)?,
        updated_at: parse_ts(row.try_get("updated_at")?)?,
    })
}

pub(super) async fn find(
    pool: &SqlitePool,
    owner: &AlertOwner,
    alert_id: &str,
) -> Result<Option<AlertRecord>, sqlx::Error> {
    let row =
        sqlx::query("SELECT * FROM alerts WHERE id = ? AND partner_id = ? AND company_id = ?")
            .bind(alert_id)
            .bind(&owner.partner_id)
            .bind(&owner.company_id)
            .fetch_optional(pool)
            .await?;
    row.as_ref().map(alert_row).transpose()
}

pub(super) async fn revisions(
    pool: &SqlitePool,
    alert_id: &str,
) -> Result<Vec<RevisionRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT revision, template_version, body_hash, payload, recorded_at FROM alert_revisions \
         WHERE alert_id = ? ORDER BY revision",
    )
    .bind(alert_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RevisionRecord {
                revision: row.try_get("revision")?,
                template_version: row.try_get("template_version")?,
                body_hash: row.try_get("body_hash")?,
                payload: row.try_get("payload")?,
                recorded_at: parse_ts(row.try_get("recorded_at")?)?,
            })
        })
        .collect()
}

pub(super) async fn outbox_after(
    pool: &SqlitePool,
    after: i64,
    limit: i64,
) -> Result<Vec<OutboxEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, event_type, alert_id, revision, partner_id, company_id, user_id, occurred_at \
         FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(OutboxEvent {
                id: row.try_get("id")?,
                event_type: row.try_get("event_type")?,
                alert_id: row.try_get("alert_id")?,
                revision: row.try_get("revision")?,
                partner_id: row.try_get("partner_id")?,
                company_id: row.try_get("company_id")?,
                user_id: row.try_get("user_id")?,
                occurred_at: parse_ts(row.try_get("occurred_at")?)?,
            })
        })
        .collect()
}
