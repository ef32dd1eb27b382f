//! The server's signing keys, and sealing secrets stored in the clear (after migrating).

use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::rows::{from_secs, parse_ts, ts};
use crate::store::{
    RetireOutcome, SigningKeyRecord,
    secrets::{Column, SEALED_PREFIX, Secrets},
};

const KEY_COLUMNS: &str = "kid, algorithm, private_pem, created_at, signed_until, retired_at";

fn key_row(row: &Row<'_>) -> rusqlite::Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.get("kid")?,
        algorithm: row.get("algorithm")?,
        private_pem: row.get("private_pem")?,
        created_at: parse_ts(&row.get::<_, String>("created_at")?)?,
        signed_until: row
            .get::<_, Option<i64>>("signed_until")?
            .map(from_secs)
            .transpose()?,
        retired_at: row
            .get::<_, Option<String>>("retired_at")?
            .as_deref()
            .map(parse_ts)
            .transpose()?,
    })
}

pub(super) fn signing_keys(db: &Connection) -> rusqlite::Result<Vec<SigningKeyRecord>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid"
    ))?;
    statement.query_map([], key_row)?.collect()
}

/// Inside the writer's IMMEDIATE transaction, check and insert are atomic.
pub(super) fn add_first_signing_key(
    db: &Connection,
    key: &SigningKeyRecord,
) -> rusqlite::Result<bool> {
    let inserted = db.execute(
        "INSERT INTO signing_keys (kid, algorithm, private_pem, created_at) \
         SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
        params![key.kid, key.algorithm, key.private_pem, ts(key.created_at)],
    )?;
    Ok(inserted == 1)
}

pub(super) fn add_signing_key(db: &Connection, key: &SigningKeyRecord) -> rusqlite::Result<()> {
    db.execute(
        "INSERT INTO signing_keys (kid, algorithm, private_pem, created_at) \
         VALUES (?1, ?2, ?3, ?4)",
        params![key.kid, key.algorithm, key.private_pem, ts(key.created_at)],
    )?;
    Ok(())
}

pub(super) fn record_signed_until(
    db: &Connection,
    kid: &str,
    until: OffsetDateTime,
) -> rusqlite::Result<bool> {
    let changed = db
        .prepare_cached(
            "UPDATE signing_keys SET signed_until = max(coalesce(signed_until, ?2), ?2) \
             WHERE kid = ?1 AND retired_at IS NULL",
        )?
        .execute(params![kid, until.unix_timestamp()])?;
    Ok(changed == 1)
}

/// On the writer thread: no token can be recorded for the key between the check and the update.
pub(super) fn retire_signing_key(
    db: &Connection,
    kid: &str,
    at: OffsetDateTime,
    expired_before: OffsetDateTime,
    force: bool,
) -> rusqlite::Result<RetireOutcome> {
    let Some(key) = db
        .query_row(
            &format!("SELECT {KEY_COLUMNS} FROM signing_keys WHERE kid = ?1"),
            [kid],
            key_row,
        )
        .optional()?
    else {
        return Ok(RetireOutcome::UnknownKey);
    };
    if key.retired_at.is_some() {
        return Ok(RetireOutcome::AlreadyRetired);
    }
    let signing: String = db.query_row(
        "SELECT kid FROM signing_keys WHERE retired_at IS NULL \
         ORDER BY created_at DESC, kid DESC LIMIT 1",
        [],
        |row| row.get(0),
    )?;
    if signing == kid {
        return Ok(RetireOutcome::Signing);
    }
    if let Some(until) = key.signed_until.filter(|until| *until > expired_before)
        && !force
    {
        return Ok(RetireOutcome::MayBeLive { until });
    }
    db.execute(
        "UPDATE signing_keys SET retired_at = ?2 WHERE kid = ?1",
        params![kid, ts(at)],
    )?;
    Ok(RetireOutcome::Retired)
}

/// Encrypts the secrets still stored in the clear (written before encryption at rest, or by an
/// older version). Idempotent; in one IMMEDIATE transaction, so two processes starting together
/// take turns and the second finds nothing left to do. Returns how many it sealed.
pub(super) fn seal_plaintext(db: &Connection, secrets: &Secrets) -> rusqlite::Result<usize> {
    let plain = format!(
        "substr(private_pem, 1, {}) <> '{SEALED_PREFIX}'",
        SEALED_PREFIX.len()
    );
    let keys: Vec<(String, String)> = db
        .prepare(&format!(
            "SELECT kid, private_pem FROM signing_keys WHERE {plain}"
        ))?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (kid, pem) in &keys {
        db.execute(
            "UPDATE signing_keys SET private_pem = ?2 WHERE kid = ?1",
            params![kid, secrets.seal(Column::SigningKey, kid, pem)],
        )?;
    }
    let plain = plain.replace("private_pem", "postback_secret");
    let partners: Vec<(String, String)> = db
        .prepare(&format!(
            "SELECT id, postback_secret FROM partners WHERE {plain}"
        ))?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, secret) in &partners {
        db.execute(
            "UPDATE partners SET postback_secret = ?2 WHERE id = ?1",
            params![id, secrets.seal(Column::PostbackSecret, id, secret)],
        )?;
    }
    Ok(keys.len() + partners.len())
}
