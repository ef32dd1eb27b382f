//! The user inbox and expiry: reads of a user's live alerts, the user's marks, and the sweeper's
//! two steps. Marks and expiries write their outbox event in the same transaction.

use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::{
    alert_reads::{RENDERING_COLUMNS, RENDERING_JOIN, rendering},
    alerts::announce,
    rows::{from_millis, millis, ts},
};
use crate::store::{
    AlertOwner, EVENT_ALERT_DISMISSED, EVENT_ALERT_EXPIRED, EVENT_ALERT_READ, InboxFilter,
    InboxItem, InboxMark, InboxOwner, InboxPage, InboxQuery,
};

const ITEM_COLUMNS: &str = "a.id, a.template_id, a.template_version, a.revision, a.msg_type, \
     a.topic, a.created_at, a.expires_at, a.read_revision, a.partner_id, \
     coalesce(p.name, a.partner_id) AS partner_name, a.snoozed_until";
const ITEM_FROM: &str = "FROM alerts a JOIN alert_revisions r \
     ON r.alert_id = a.id AND r.revision = a.revision LEFT JOIN partners p ON p.id = a.partner_id";
/// The owner's live alerts: ?1 company, ?2 user, ?3 now (unix ms). `alerts_inbox` finds the
/// owner's rows; the rest is tested on them.
pub(super) const LIVE: &str = "a.company_id = ?1 AND a.user_id = ?2 AND a.expires_at > ?3 \
     AND a.dismissed_at IS NULL AND a.withdrawn_at IS NULL";
/// In the inbox rather than snoozed, at ?3.
pub(super) const AWAKE: &str = "(a.snoozed_until IS NULL OR a.snoozed_until <= ?3)";
const SNOOZED: &str = "a.snoozed_until > ?3";
pub(super) const UNREAD: &str = "(a.read_revision IS NULL OR a.read_revision < a.revision)";
/// What `inbox_counters` counts, as `alerts_unread`'s predicate writes it (SQLite uses a partial
/// index only when the query repeats its terms).
const COUNTED: &str = "a.expired_at IS NULL AND a.dismissed_at IS NULL AND a.withdrawn_at IS NULL \
     AND a.snoozed_until IS NULL AND (a.read_revision IS NULL OR a.read_revision < a.revision)";

fn item(row: &Row<'_>) -> rusqlite::Result<InboxItem> {
    let revision: i64 = row.get("revision")?;
    let read_revision: Option<i64> = row.get("read_revision")?;
    let rendering = rendering(row)?;
    Ok(InboxItem {
        alert_id: row.get("id")?,
        template_id: row.get("template_id")?,
        template_version: row.get("template_version")?,
        revision,
        msg_type: row.get("msg_type")?,
        topic: row.get("topic")?,
        created_at: row.get("created_at")?,
        expires_at: from_millis(row.get("expires_at")?)?,
        read: read_revision.is_some_and(|read| read >= revision),
        title: rendering.title,
        html: rendering.html,
        text: rendering.text,
        partner_id: row.get("partner_id")?,
        partner_name: row.get("partner_name")?,
        snoozed_until: None,
    })
}

/// An item as of `now`: its snooze shows only while it is ahead.
fn item_at(row: &Row<'_>, now: i64) -> rusqlite::Result<InboxItem> {
    let mut item = item(row)?;
    let snoozed_until: Option<i64> = row.get("snoozed_until")?;
    item.snoozed_until = snoozed_until
        .filter(|until| *until > now)
        .map(from_millis)
        .transpose()?;
    Ok(item)
}

pub(super) fn page(db: &Connection, query: &InboxQuery) -> rusqlite::Result<InboxPage> {
    let shown = match query.filter {
        InboxFilter::Unread => format!("AND {AWAKE} AND {UNREAD}"),
        InboxFilter::All => format!("AND {AWAKE}"),
        InboxFilter::Snoozed => format!("AND {SNOOZED}"),
    };
    let now = millis(query.now);
    let cursor = if query.before.is_some() {
        "AND a.id < ?4"
    } else {
        "AND ?4 IS NULL"
    };
    let owner = &query.owner;
    let items = db
        .prepare_cached(&format!(
            "SELECT {ITEM_COLUMNS}, {RENDERING_COLUMNS} {ITEM_FROM} {RENDERING_JOIN} WHERE {LIVE} {shown} {cursor} \
             ORDER BY a.id DESC LIMIT ?5"
        ))?
        .query_map(
            params![
                owner.company_id,
                owner.user_id,
                now,
                query.before,
                query.limit
            ],
            |row| item_at(row, now),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(InboxPage {
        items,
        unread_count: unread_count(db, owner, query.now)?,
    })
}

pub(super) fn find(
    db: &Connection,
    owner: &InboxOwner,
    alert_id: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<Option<InboxItem>> {
    db.prepare_cached(&format!(
        "SELECT {ITEM_COLUMNS}, {RENDERING_COLUMNS} {ITEM_FROM} {RENDERING_JOIN} WHERE {LIVE} AND a.id = ?4"
    ))?
    .query_row(
        params![owner.company_id, owner.user_id, millis(now), alert_id],
        |row| item_at(row, millis(now)),
    )
    .optional()
}

pub(super) fn unread_count(
    db: &Connection,
    owner: &InboxOwner,
    now: OffsetDateTime,
) -> rusqlite::Result<i64> {
    // The counter that changes keep (triggers of migration 0013), corrected by what the clock
    // decided since the sweeper's last pass: counted alerts whose expiry has passed, and ended
    // snoozes not yet cleared. Both are index ranges of what changed since that pass, so the
    // count costs the same for ten alerts or a hundred thousand.
    db.prepare_cached(&format!(
        "SELECT coalesce((SELECT unread FROM inbox_counters \
             WHERE company_id = ?1 AND user_id = ?2), 0) \
         - (SELECT COUNT(*) FROM alerts a INDEXED BY alerts_unread \
             WHERE a.company_id = ?1 AND a.user_id = ?2 AND a.expires_at <= ?3 AND {COUNTED}) \
         + (SELECT COUNT(*) FROM alerts a INDEXED BY alerts_snoozed_by_user \
             WHERE a.company_id = ?1 AND a.user_id = ?2 AND a.snoozed_until IS NOT NULL \
             AND a.snoozed_until <= ?3 AND a.expires_at > ?3 AND a.expired_at IS NULL \
             AND a.dismissed_at IS NULL AND a.withdrawn_at IS NULL AND {UNREAD})"
    ))?
    .query_row(
        params![owner.company_id, owner.user_id, millis(now)],
        |row| row.get(0),
    )
}

pub(super) fn mark(
    db: &Connection,
    owner: &InboxOwner,
    alert_id: &str,
    mark: InboxMark,
    now: OffsetDateTime,
) -> rusqlite::Result<Option<bool>> {
    let current: Option<(String, i64, Option<i64>, Option<String>)> = db
        .prepare_cached(
            "SELECT partner_id, revision, read_revision, dismissed_at FROM alerts \
             WHERE id = ?1 AND company_id = ?2 AND user_id = ?3 AND expires_at > ?4 \
             AND withdrawn_at IS NULL",
        )?
        .query_row(
            params![alert_id, owner.company_id, owner.user_id, millis(now)],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let Some((partner_id, revision, read_revision, dismissed_at)) = current else {
        return Ok(None);
    };
    let event = match mark {
        InboxMark::Read if read_revision.is_some_and(|read| read >= revision) => {
            return Ok(Some(false));
        }
        InboxMark::Dismissed if dismissed_at.is_some() => return Ok(Some(false)),
        InboxMark::Read => {
            db.prepare_cached("UPDATE alerts SET read_revision = revision WHERE id = ?1")?
                .execute([alert_id])?;
            EVENT_ALERT_READ
        }
        InboxMark::Dismissed => {
            db.prepare_cached("UPDATE alerts SET dismissed_at = ?1 WHERE id = ?2")?
                .execute(params![ts(now), alert_id])?;
            EVENT_ALERT_DISMISSED
        }
    };
    let alert_owner = AlertOwner {
        partner_id,
        company_id: owner.company_id.clone(),
    };
    announce(
        db,
        event,
        alert_id,
        revision,
        &alert_owner,
        &owner.user_id,
        now,
    )?;
    Ok(Some(true))
}

/// Marks due alerts expired, oldest expiry first; each event says when the alert expired. A
/// withdrawn alert is marked (so that it is purged in turn) but not announced again: it left
/// the inboxes with its `alert.withdrawn`.
pub(super) fn expire(db: &Connection, now: OffsetDateTime, limit: i64) -> rusqlite::Result<u64> {
    type Due = (String, i64, String, String, String, i64, bool);
    let due: Vec<Due> = db
        .prepare_cached(
            "SELECT id, revision, partner_id, company_id, user_id, expires_at, \
             withdrawn_at IS NOT NULL FROM alerts \
             WHERE expired_at IS NULL AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
        )?
        .query_map(params![millis(now), limit], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let swept_at = ts(now);
    for (alert_id, revision, partner_id, company_id, user_id, expires_at, withdrawn) in &due {
        db.prepare_cached("UPDATE alerts SET expired_at = ?1 WHERE id = ?2")?
            .execute(params![swept_at, alert_id])?;
        if *withdrawn {
            continue;
        }
        let owner = AlertOwner {
            partner_id: partner_id.clone(),
            company_id: company_id.clone(),
        };
        let expired_at = from_millis(*expires_at)?;
        announce(
            db,
            EVENT_ALERT_EXPIRED,
            alert_id,
            *revision,
            &owner,
            user_id,
            expired_at,
        )?;
    }
    Ok(due.len() as u64)
}

/// What revisions share by hash: (table, the revisions' column naming a row of it).
const SHARED_BY_HASH: [(&str, &str); 2] = [
    ("renderings", "rendering_hash"),
    ("metadata_documents", "metadata_hash"),
];

pub(super) fn purge(db: &Connection, cutoff: OffsetDateTime, limit: i64) -> rusqlite::Result<u64> {
    const PURGED: &str = "SELECT id FROM alerts WHERE expired_at IS NOT NULL \
         AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2";
    // The renderings and metadata documents these alerts named; those no other revision
    // names go with them.
    let mut named = Vec::with_capacity(SHARED_BY_HASH.len());
    for (_, column) in SHARED_BY_HASH {
        let hashes: Vec<Vec<u8>> = db
            .prepare_cached(&format!(
                "SELECT DISTINCT {column} FROM alert_revisions \
                 WHERE {column} IS NOT NULL AND alert_id IN ({PURGED})"
            ))?
            .query_map(params![millis(cutoff), limit], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        named.push(hashes);
    }
    let deleted = db
        .prepare_cached(&format!("DELETE FROM alerts WHERE id IN ({PURGED})"))?
        .execute(params![millis(cutoff), limit])?;
    for ((table, column), hashes) in SHARED_BY_HASH.into_iter().zip(named) {
        let mut orphaned = db.prepare_cached(&format!(
            "DELETE FROM {table} WHERE hash = ?1 \
             AND NOT EXISTS (SELECT 1 FROM alert_revisions WHERE {column} = ?1)"
        ))?;
        for hash in hashes {
            orphaned.execute([hash])?;
        }
    }
    Ok(deleted as u64)
}
