//! A partner's refresh tokens on PostgreSQL: a request token redeemed for the first of a chain,
//! and each refresh token traded once for the next. Each runs in one transaction on row locks
//! (`UPDATE … RETURNING`, `SELECT … FOR UPDATE`), so two instances never redeem or rotate one
//! token twice.

use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;

use super::json::{decode_json, encode_json};
use crate::store::{NewRefreshToken, RefreshOutcome};

/// Redeems a request token of a connected company once, issuing the first refresh token of its
/// chain; `None` when the token is unknown, used, expired or its connection is gone.
pub(super) async fn redeem(
    pool: &PgPool,
    token_hash: &str,
    refresh: &NewRefreshToken,
    now: OffsetDateTime,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let user_id: Option<String> = sqlx::query_scalar(
        "UPDATE request_tokens SET used_at = $4 WHERE token_hash = $1 AND partner_id = $2 \
         AND company_id = $3 AND used_at IS NULL AND expires_at > $4 \
         AND EXISTS (SELECT 1 FROM connections c WHERE c.partner_id = $2 \
                     AND c.company_id = $3 AND c.disconnected_at IS NULL) \
         RETURNING user_id",
    )
    .bind(token_hash)
    .bind(&refresh.client_id)
    .bind(&refresh.company_id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    if user_id.is_some() {
        insert_refresh(&mut tx, refresh).await?;
    }
    tx.commit().await?;
    Ok(user_id)
}

async fn insert_refresh(db: &mut PgConnection, token: &NewRefreshToken) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, chain_id, client_id, company_id, scopes, \
         issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&token.token_hash)
    .bind(&token.chain_id)
    .bind(&token.client_id)
    .bind(&token.company_id)
    .bind(encode_json(&token.scopes)?)
    .bind(token.issued_at)
    .bind(token.expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Trades a refresh token for its successor in the chain. A token presented twice revokes the
/// whole chain: one of its two holders is not the client.
pub(super) async fn rotate(
    pool: &PgPool,
    token_hash: &str,
    asked: Option<&[String]>,
    next: &NewRefreshToken,
    now: OffsetDateTime,
) -> Result<RefreshOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The row lock makes two presentations of one token take turns: the second sees it used.
    let presented = sqlx::query(
        "SELECT chain_id, company_id, scopes, expires_at, used_at, revoked_at \
         FROM refresh_tokens WHERE token_hash = $1 AND client_id = $2 FOR UPDATE",
    )
    .bind(token_hash)
    .bind(&next.client_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = presented else {
        return Ok(RefreshOutcome::Invalid);
    };
    let chain_id: String = row.try_get("chain_id")?;
    let expires_at: OffsetDateTime = row.try_get("expires_at")?;
    let used_at: Option<OffsetDateTime> = row.try_get("used_at")?;
    let revoked_at: Option<OffsetDateTime> = row.try_get("revoked_at")?;
    if revoked_at.is_some() || expires_at <= now {
        return Ok(RefreshOutcome::Invalid);
    }
    if used_at.is_some() {
        // Used twice: one of the two holders is not the client. Nothing of the chain is
        // trusted any more.
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE chain_id = $1 AND revoked_at IS NULL",
        )
        .bind(&chain_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(RefreshOutcome::Reused { chain_id });
    }
    let company_id: String = row.try_get("company_id")?;
    let scopes: Vec<String> = decode_json(&row.try_get::<String, _>("scopes")?)?;
    if asked.is_some_and(|asked| asked.iter().any(|scope| !scopes.contains(scope))) {
        return Ok(RefreshOutcome::ScopeNotHeld);
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1")
        .bind(token_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let replacement = NewRefreshToken {
        chain_id: chain_id.clone(),
        company_id: company_id.clone(),
        scopes: scopes.clone(),
        ..next.clone()
    };
    insert_refresh(&mut tx, &replacement).await?;
    tx.commit().await?;
    Ok(RefreshOutcome::Rotated {
        chain_id,
        company_id,
        scopes,
    })
}
