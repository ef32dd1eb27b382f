//! The server's signing keys, and sealing secrets stored in the clear (after migrating).

use sqlx::{PgPool, Row, postgres::PgRow};
use time::OffsetDateTime;

use crate::store::{
    RetireOutcome, SigningKeyRecord,
    secrets::{Column, SEALED_PREFIX, Secrets},
};

/// Serialises first-key generation across instances (an arbitrary, fixed lock id).
const FIRST_KEY_LOCK: i64 = 0x6d61_6573_7472_6f01;

const KEY_COLUMNS: &str = "kid, algorithm, private_pem, created_at, signed_until, retired_at";

fn key_row(row: &PgRow) -> Result<SigningKeyRecord, sqlx::Error> {
    Ok(SigningKeyRecord {
        kid: row.try_get("kid")?,
        algorithm: row.try_get("algorithm")?,
        private_pem: row.try_get("private_pem")?,
        created_at: row.try_get("created_at")?,
        signed_until: row.try_get("signed_until")?,
        retired_at: row.try_get("retired_at")?,
    })
}

pub(super) async fn signing_keys(pool: &PgPool) -> Result<Vec<SigningKeyRecord>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid"
    ))
    .fetch_all(pool)
    .await?;
    rows.iter().map(key_row).collect()
}

pub(super) async fn add_first_signing_key(
    pool: &PgPool,
    key: &SigningKeyRecord,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Without the lock, two instances could both see an empty table and both insert.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(FIRST_KEY_LOCK)
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_pem, created_at) \
         SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
    )
    .bind(&key.kid)
    .bind(&key.algorithm)
    .bind(&key.private_pem)
    .bind(key.created_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(inserted == 1)
}

pub(super) async fn add_signing_key(
    pool: &PgPool,
    key: &SigningKeyRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_pem, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&key.kid)
    .bind(&key.algorithm)
    .bind(&key.private_pem)
    .bind(key.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The update locks the key's row: a retirement (which locks it too) sees the new value.
pub(super) async fn record_signed_until(
    pool: &PgPool,
    kid: &str,
    until: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "UPDATE signing_keys SET signed_until = greatest(signed_until, $2) \
         WHERE kid = $1 AND retired_at IS NULL",
    )
    .bind(kid)
    .bind(until)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// Locks every key not retired, so that neither a token recorded for this key nor another
/// retirement slips in between the checks and the update.
pub(super) async fn retire_signing_key(
    pool: &PgPool,
    kid: &str,
    at: OffsetDateTime,
    expired_before: OffsetDateTime,
    force: bool,
) -> Result<RetireOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let live = sqlx::query(&format!(
        "SELECT {KEY_COLUMNS} FROM signing_keys WHERE retired_at IS NULL \
         ORDER BY created_at, kid FOR UPDATE"
    ))
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(key_row)
    .collect::<Result<Vec<_>, _>>()?;
    let Some(key) = live.iter().find(|key| key.kid == kid) else {
        let known: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM signing_keys WHERE kid = $1)")
                .bind(kid)
                .fetch_one(&mut *tx)
                .await?;
        return Ok(if known {
            RetireOutcome::AlreadyRetired
        } else {
            RetireOutcome::UnknownKey
        });
    };
    if live.last().is_some_and(|newest| newest.kid == kid) {
        return Ok(RetireOutcome::Signing);
    }
    if let Some(until) = key.signed_until.filter(|until| *until > expired_before)
        && !force
    {
        return Ok(RetireOutcome::MayBeLive { until });
    }
    sqlx::query("UPDATE signing_keys SET retired_at = $2 WHERE kid = $1")
        .bind(kid)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(RetireOutcome::Retired)
}

/// Encrypts the secrets still stored in the clear (written before encryption at rest, or by an
/// older version). Idempotent, and safe when instances start together: the rows are locked, and
/// a row another instance sealed meanwhile no longer matches when the lock is granted (READ
/// COMMITTED re-checks it). Returns how many it sealed.
pub(super) async fn seal_plaintext(pool: &PgPool, secrets: &Secrets) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let prefix = format!("{SEALED_PREFIX}%");
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT kid, private_pem FROM signing_keys WHERE private_pem NOT LIKE $1 FOR UPDATE",
    )
    .bind(&prefix)
    .fetch_all(&mut *tx)
    .await?;
    for (kid, pem) in &keys {
        sqlx::query("UPDATE signing_keys SET private_pem = $2 WHERE kid = $1")
            .bind(kid)
            .bind(secrets.seal(Column::SigningKey, kid, pem))
            .execute(&mut *tx)
            .await?;
    }
    let partners: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, postback_secret FROM partners WHERE postback_secret NOT LIKE $1 FOR UPDATE",
    )
    .bind(&prefix)
    .fetch_all(&mut *tx)
    .await?;
    for (id, secret) in &partners {
        sqlx::query("UPDATE partners SET postback_secret = $2 WHERE id = $1")
            .bind(id)
            .bind(secrets.seal(Column::PostbackSecret, id, secret))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(keys.len() + partners.len())
}
