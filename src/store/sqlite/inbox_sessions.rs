//! The inbox page's sessions and used sign-in links on SQLite (one-off writes through the
//! writer; a session is looked up on a read connection).

use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use super::rows::{from_millis, millis, ts};
use crate::store::{InboxOwner, InboxSession};

pub(super) fn create(
    db: &Connection,
    session: &InboxSession,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    db.prepare_cached(
        "INSERT INTO inbox_sessions (digest, company_id, user_id, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        session.digest,
        session.owner.company_id,
        session.owner.user_id,
        ts(now),
        millis(session.expires_at)
    ])?;
    Ok(())
}

pub(super) fn find(
    db: &Connection,
    digest: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<Option<InboxSession>> {
    let found: Option<(String, String, i64)> = db
        .prepare_cached(
            "SELECT company_id, user_id, expires_at FROM inbox_sessions \
             WHERE digest = ?1 AND ended_at IS NULL AND expires_at > ?2",
        )?
        .query_row(params![digest, millis(now)], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    found
        .map(|(company_id, user_id, expires_at)| {
            Ok(InboxSession {
                digest: digest.to_owned(),
                owner: InboxOwner {
                    company_id,
                    user_id,
                },
                expires_at: from_millis(expires_at)?,
            })
        })
        .transpose()
}

pub(super) fn end(db: &Connection, digest: &str, now: OffsetDateTime) -> rusqlite::Result<bool> {
    let ended = db
        .prepare_cached(
            "UPDATE inbox_sessions SET ended_at = ?2 \
             WHERE digest = ?1 AND ended_at IS NULL AND expires_at > ?3",
        )?
        .execute(params![digest, ts(now), millis(now)])?;
    Ok(ended == 1)
}

pub(super) fn use_link(
    db: &Connection,
    jti: &str,
    expires_at: OffsetDateTime,
) -> rusqlite::Result<bool> {
    let recorded = db
        .prepare_cached(
            "INSERT INTO inbox_sign_ins (jti, expires_at) VALUES (?1, ?2) \
             ON CONFLICT (jti) DO NOTHING",
        )?
        .execute(params![jti, millis(expires_at)])?;
    Ok(recorded == 1)
}

pub(super) fn purge(db: &Connection, now: OffsetDateTime) -> rusqlite::Result<u64> {
    let sessions = db
        .prepare_cached("DELETE FROM inbox_sessions WHERE expires_at <= ?1")?
        .execute([millis(now)])?;
    let links = db
        .prepare_cached("DELETE FROM inbox_sign_ins WHERE expires_at <= ?1")?
        .execute([millis(now)])?;
    Ok((sessions + links) as u64)
}
