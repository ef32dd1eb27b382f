//! The user inbox and expiry: reads of a user's live alerts, the user's marks, and the sweeper's
//! two steps. Marks and expiries write their outbox event in the same transaction; sweepers of
//! several instances skip each other's rows (`SKIP LOCKED`).

use sqlx::{PgPool, Row, postgres::PgRow};
use time::OffsetDateTime;

use super::alerts::{announce, rendering};
use crate::store::{
    AlertOwner, EVENT_ALERT_DISMISSED, EVENT_ALERT_EXPIRED, EVENT_ALERT_READ, InboxFilter,
    InboxItem, InboxMark, InboxOwner, InboxPage, InboxQuery,
};

const ITEM_COLUMNS: &str = "a.id, a.template_id, a.template_version, a.revision, a.msg_type, \
     a.topic, a.created_at, a.expires_at, a.read_revision, \
     coalesce(g.title, r.rendered_title) AS rendered_title, \
     coalesce(g.html, r.rendered_html) AS rendered_html, \
     coalesce(g.text, r.rendered_text) AS rendered_text, a.partner_id, coalesce(p.name, a.partner_id) AS partner_name, \
     CASE WHEN a.snoozed_until > $3 THEN a.snoozed_until END AS snoozed_until";
const ITEM_FROM: &str = "FROM alerts a JOIN alert_revisions r \
     ON r.alert_id = a.id AND r.revision = a.revision \
     LEFT JOIN renderings g ON g.hash = r.rendering_hash \
     LEFT JOIN partners p ON p.id = a.partner_id";
/// The owner's live alerts: $1 company, $2 user, $3 now. `alerts_inbox` finds the owner's rows;
/// the rest is tested on them.
pub(super) const LIVE: &str = "a.company_id = $1 AND a.user_id = $2 AND a.expires_at > $3 \
     AND a.dismissed_at IS NULL AND a.withdrawn_at IS NULL";
/// In the inbox rather than snoozed, at $3.
pub(super) const AWAKE: &str = "(a.snoozed_until IS NULL OR a.snoozed_until <= $3)";
const SNOOZED: &str = "a.snoozed_until > $3";
pub(super) const UNREAD: &str = "(a.read_revision IS NULL OR a.read_revision < a.revision)";
/// What `inbox_counters` counts, as `alerts_unread`'s predicate writes it.
const COUNTED: &str = "a.expired_at IS NULL AND a.dismissed_at IS NULL AND a.withdrawn_at IS NULL \
     AND a.snoozed_until IS NULL AND (a.read_revision IS NULL OR a.read_revision < a.revision)";

fn item(row: &PgRow) -> Result<InboxItem, sqlx::Error> {
    let revision: i64 = row.try_get("revision")?;
    let read_revision: Option<i64> = row.try_get("read_revision")?;
    let rendering = rendering(row)?;
    Ok(InboxItem {
        alert_id: row.try_get("id")?,
        template_id: row.try_get("template_id")?,
        template_version: row.try_get("template_version")?,
        revision,
        msg_type: row.try_get("msg_type")?,
        topic: row.try_get("topic")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        read: read_revision.is_some_and(|read| read >= revision),
        title: rendering.title,
        html: rendering.html,
        text: rendering.text,
        partner_id: row.try_get("partner_id")?,
        partner_name: row.try_get("partner_name")?,
        snoozed_until: row.try_get("snoozed_until")?,
    })
}

pub(super) async fn page(pool: &PgPool, query: &InboxQuery) -> Result<InboxPage, sqlx::Error> {
    let shown = match query.filter {
        InboxFilter::Unread => format!("AND {AWAKE} AND {UNREAD}"),
        InboxFilter::All => format!("AND {AWAKE}"),
        InboxFilter::Snoozed => format!("AND {SNOOZED}"),
    };
    let owner = &query.owner;
    let rows = sqlx::query(&format!(
        "SELECT {ITEM_COLUMNS} {ITEM_FROM} WHERE {LIVE} {shown} \
         AND ($4::text IS NULL OR a.id < $4) ORDER BY a.id DESC LIMIT $5"
    ))
    .bind(&owner.company_id)
    .bind(&owner.user_id)
    .bind(query.now)
    .bind(&query.before)
    .bind(query.limit)
    .fetch_all(pool)
    .await?;
    Ok(InboxPage {
        items: rows.iter().map(item).collect::<Result<_, _>>()?,
        unread_count: unread_count(pool, owner, query.now).await?,
    })
}

pub(super) async fn find(
    pool: &PgPool,
    owner: &InboxOwner,
    alert_id: &str,
    now: OffsetDateTime,
) -> Result<Option<InboxItem>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {ITEM_COLUMNS} {ITEM_FROM} WHERE {LIVE} AND a.id = $4"
    ))
    .bind(&owner.company_id)
    .bind(&owner.user_id)
    .bind(now)
    .bind(alert_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(item).transpose()
}

/// The counter that changes keep (the trigger of migration 0011), corrected by what the clock
/// decided since the sweeper's last pass: counted alerts whose expiry has passed, and ended
/// snoozes not yet cleared. Both are index ranges of what changed since that pass, so the count
/// costs the same for ten alerts or a hundred thousand.
pub(super) async fn unread_count(
    pool: &PgPool,
    owner: &InboxOwner,
    now: OffsetDateTime,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT coalesce((SELECT unread FROM inbox_counters \
             WHERE company_id = $1 AND user_id = $2), 0) \
         - (SELECT COUNT(*) FROM alerts a \
             WHERE a.company_id = $1 AND a.user_id = $2 AND a.expires_at <= $3 AND {COUNTED}) \
         + (SELECT COUNT(*) FROM alerts a \
             WHERE a.company_id = $1 AND a.user_id = $2 AND a.snoozed_until IS NOT NULL \
             AND a.snoozed_until <= $3 AND a.expires_at > $3 AND a.expired_at IS NULL \
             AND a.dismissed_at IS NULL AND a.withdrawn_at IS NULL AND {UNREAD})"
    ))
    .bind(&owner.company_id)
    .bind(&owner.user_id)
    .bind(now)
    .fetch_one(pool)
    .await
}

pub(super) async fn mark(
    pool: &PgPool,
    owner: &InboxOwner,
    alert_id: &str,
    mark: InboxMark,
    now: OffsetDateTime,
) -> Result<Option<bool>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // FOR UPDATE: a mark and a partner's update of the same alert take turns.
    let current: Option<(String, i64, Option<i64>, Option<OffsetDateTime>)> = sqlx::query_as(
        "SELECT partner_id, revision, read_revision, dismissed_at FROM alerts \
         WHERE id = $1 AND company_id = $2 AND user_id = $3 AND expires_at > $4 \
         AND withdrawn_at IS NULL FOR UPDATE",
    )
    .bind(alert_id)
    .bind(&owner.company_id)
    .bind(&owner.user_id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((partner_id, revision, read_revision, dismissed_at)) = current else {
        tx.rollback().await?;
        return Ok(None);
    };
    let unchanged = match mark {
        InboxMark::Read => read_revision.is_some_and(|read| read >= revision),
        InboxMark::Dismissed => dismissed_at.is_some(),
    };
    if unchanged {
        tx.rollback().await?;
        return Ok(Some(false));
    }
    let event = match mark {
        InboxMark::Read => {
            sqlx::query("UPDATE alerts SET read_revision = revision WHERE id = $1")
                .bind(alert_id)
                .execute(&mut *tx)
                .await?;
            EVENT_ALERT_READ
        }
        InboxMark::Dismissed => {
            sqlx::query("UPDATE alerts SET dismissed_at = $1 WHERE id = $2")
                .bind(now)
                .bind(alert_id)
                .execute(&mut *tx)
                .await?;
            EVENT_ALERT_DISMISSED
        }
    };
    let alert_owner = AlertOwner {
        partner_id,
        company_id: owner.company_id.clone(),
    };
    announce(
        &mut tx,
        event,
        alert_id,
        revision,
        &alert_owner,
        &owner.user_id,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(true))
}

/// Marks due alerts expired, oldest expiry first; each event says when the alert expired. A
/// withdrawn alert is marked (so that it is purged in turn) but not announced again: it left
/// the inboxes with its `alert.withdrawn`.
pub(super) async fn expire(
    pool: &PgPool,
    now: OffsetDateTime,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    // A data-modifying CTE runs whether or not the outer query reads it; the count is of the
    // marked alerts, so that the sweeper knows whether a full batch was due.
    let marked: i64 = sqlx::query_scalar(&format!(
        "WITH due AS ( \
             SELECT id FROM alerts WHERE expired_at IS NULL AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
         expired AS ( \
             UPDATE alerts a SET expired_at = $1 FROM due WHERE a.id = due.id \
             RETURNING a.id, a.revision, a.partner_id, a.company_id, a.user_id, a.expires_at, \
             a.withdrawn_at, a.template_id), \
         announced AS ( \
             INSERT INTO outbox (event_type, alert_id, revision, partner_id, company_id, \
                 user_id, occurred_at, template_id, expires_at) \
             SELECT '{EVENT_ALERT_EXPIRED}', id, revision, partner_id, company_id, user_id, \
                 expires_at, template_id, expires_at \
             FROM expired WHERE withdrawn_at IS NULL ORDER BY expires_at, id) \
         SELECT COUNT(*) FROM expired"
    ))
    .bind(now)
    .bind(limit)
    .fetch_one(pool)
    .await?;
    Ok(marked as u64)
}

/// Deletes alerts marked expired before `cutoff` (their revisions go with them), and the
/// renderings and metadata documents that no revision names any more.
pub(super) async fn purge(
    pool: &PgPool,
    cutoff: OffsetDateTime,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let purged: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM alerts WHERE expired_at IS NOT NULL AND expires_at <= $1 \
         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if purged.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let (renderings, documents): (Vec<Vec<u8>>, Vec<Vec<u8>>) = sqlx::query_as(
        "SELECT coalesce(array_agg(DISTINCT rendering_hash) \
                 FILTER (WHERE rendering_hash IS NOT NULL), '{}'), \
             coalesce(array_agg(DISTINCT metadata_hash) \
                 FILTER (WHERE metadata_hash IS NOT NULL), '{}') \
         FROM alert_revisions WHERE alert_id = ANY($1)",
    )
    .bind(&purged)
    .fetch_one(&mut *tx)
    .await?;
    let deleted = sqlx::query("DELETE FROM alerts WHERE id = ANY($1)")
        .bind(&purged)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // A revision committed meanwhile that names one of them makes this transaction fail on
    // the foreign key (and the pass is retried), rather than lose the document it names.
    for (table, column, hashes) in [
        ("renderings", "rendering_hash", renderings),
        ("metadata_documents", "metadata_hash", documents),
    ] {
        if hashes.is_empty() {
            continue;
        }
        sqlx::query(&format!(
            "DELETE FROM {table} d WHERE d.hash = ANY($1) \
             AND NOT EXISTS (SELECT 1 FROM alert_revisions r WHERE r.{column} = d.hash)"
        ))
        .bind(hashes)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(deleted)
}
