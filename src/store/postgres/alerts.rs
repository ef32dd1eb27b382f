//! Alerts, their revisions and the outbox. Every change writes its outbox event in the same
//! transaction as the change itself.

use sqlx::{PgPool, Postgres, Row, Transaction, postgres::PgRow};
use time::OffsetDateTime;

use crate::store::{
    AlertChange, AlertContent, AlertOwner, AlertRecord, AlertSelector, AlertTarget, CreateOutcome,
    EVENT_ALERT_CREATED, EVENT_ALERT_UPDATED, NewAlert, OutboxEvent, Rendering, RevisionRecord,
    UpdateOutcome,
};

pub(super) async fn create(pool: &PgPool, alert: &NewAlert) -> Result<CreateOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let c = &alert.content;
    // The unique constraint decides between instances racing on one extRef: the loser's insert
    // waits for the winner's commit, does nothing, and then reads the winner's row.
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO alerts (id, partner_id, company_id, ext_ref, user_id, template_id, \
         template_version, msg_type, topic, title, created_at, expires_at, revision, body_hash, \
         received_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $14, $14) \
         ON CONFLICT (partner_id, company_id, ext_ref) DO NOTHING RETURNING id",
    )
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
    .bind(c.expires_at)
    .bind(&c.body_hash)
    .bind(alert.received_at)
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        let (alert_id, body_hash, withdrawn): (String, String, bool) = sqlx::query_as(
            "SELECT id, body_hash, withdrawn_at IS NOT NULL FROM alerts \
             WHERE partner_id = $1 AND company_id = $2 AND ext_ref = $3",
        )
        .bind(&alert.owner.partner_id)
        .bind(&alert.owner.company_id)
        .bind(&c.ext_ref)
        .fetch_one(&mut *tx)
        .await?;
        tx.rollback().await?;
        let same_body = body_hash == c.body_hash;
        return Ok(if withdrawn {
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
    record_revision(&mut tx, &alert.id, 1, c, alert.received_at).await?;
    announce(
        &mut tx,
        EVENT_ALERT_CREATED,
        &alert.id,
        1,
        &alert.owner,
        &c.user_id,
        alert.received_at,
    )
    .await?;
    tx.commit().await?;
    Ok(CreateOutcome::Created)
}

pub(super) async fn update(
    pool: &PgPool,
    target: &AlertTarget,
    change: &AlertChange,
) -> Result<UpdateOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (column, value) = match &target.selector {
        AlertSelector::Id(id) => ("id", id),
        AlertSelector::ExtRef(ext_ref) => ("ext_ref", ext_ref),
    };
    // FOR UPDATE: concurrent updates of one alert take turns, so revisions never collide.
    let current: Option<(String, String, i64, String, bool)> = sqlx::query_as(&format!(
        "SELECT id, ext_ref, revision, body_hash, withdrawn_at IS NOT NULL FROM alerts \
         WHERE partner_id = $1 AND company_id = $2 AND {column} = $3 FOR UPDATE"
    ))
    .bind(&target.owner.partner_id)
    .bind(&target.owner.company_id)
    .bind(value)
    .fetch_optional(&mut *tx)
    .await?;
    // Early answers end the transaction here, not on drop: a dropped transaction's rollback
    // waits for the connection's next use and keeps the row lock until then.
    let Some((alert_id, ext_ref, revision, body_hash, withdrawn)) = current else {
        tx.rollback().await?;
        return Ok(UpdateOutcome::NotFound);
    };
    // Withdrawn outranks the body's faults: no update of this alert can succeed.
    if withdrawn {
        tx.rollback().await?;
        return Ok(UpdateOutcome::Withdrawn { alert_id });
    }
    let c = &change.content;
    if ext_ref != c.ext_ref {
        tx.rollback().await?;
        return Ok(UpdateOutcome::ExtRefMismatch { alert_id });
    }
    if body_hash == c.body_hash {
        tx.rollback().await?;
        return Ok(UpdateOutcome::Unchanged { alert_id, revision });
    }

    let revision = revision + 1;
    sqlx::query(
        "UPDATE alerts SET user_id = $1, template_id = $2, template_version = $3, msg_type = $4, \
         topic = $5, title = $6, created_at = $7, expires_at = $8, revision = $9, body_hash = $10, \
         updated_at = $11, expired_at = NULL WHERE id = $12",
    )
    .bind(&c.user_id)
    .bind(&c.template_id)
    .bind(c.template_version)
    .bind(&c.msg_type)
    .bind(&c.topic)
    .bind(&c.title)
    .bind(&c.created_at)
    .bind(c.expires_at)
    .bind(revision)
    .bind(&c.body_hash)
    .bind(change.changed_at)
    .bind(&alert_id)
    .execute(&mut *tx)
    .await?;
    record_revision(&mut tx, &alert_id, revision, c, change.changed_at).await?;
    announce(
        &mut tx,
        EVENT_ALERT_UPDATED,
        &alert_id,
        revision,
        &target.owner,
        &c.user_id,
        change.changed_at,
    )
    .await?;
    tx.commit().await?;
    Ok(UpdateOutcome::Updated { alert_id, revision })
}

async fn record_revision(
    tx: &mut Transaction<'_, Postgres>,
    alert_id: &str,
    revision: i64,
    content: &AlertContent,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alert_revisions (alert_id, revision, template_version, body_hash, payload, \
         rendered_title, rendered_html, rendered_text, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(alert_id)
    .bind(revision)
    .bind(content.template_version)
    .bind(&content.body_hash)
    .bind(&content.payload)
    .bind(&content.rendering.title)
    .bind(&content.rendering.html)
    .bind(&content.rendering.text)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

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
            payload: row.try_get("payload")?,
            rendering: rendering(row)?.into(),
            payload_metadata: None,
        },
        revision: row.try_get("revision")?,
        received_at: row.try_get("received_at")?,
        updated_at: row.try_get("updated_at")?,
        withdrawn_at: row.try_get("withdrawn_at")?,
    })
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
    let row = sqlx::query(
        "SELECT a.*, r.payload, r.rendered_title, r.rendered_html, r.rendered_text \
         FROM alerts a JOIN alert_revisions r \
         ON r.alert_id = a.id AND r.revision = a.revision \
         WHERE a.id = $1 AND a.partner_id = $2 AND a.company_id = $3",
    )
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
    let rows = sqlx::query(
        "SELECT revision, template_version, body_hash, payload, rendered_title, rendered_html, \
         rendered_text, recorded_at FROM alert_revisions WHERE alert_id = $1 ORDER BY revision",
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
                occurred_at: row.try_get("occurred_at")?,
            })
        })
        .collect()
}

pub(super) async fn outbox_head(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM outbox")
        .fetch_one(pool)
        .await
}
