//! A partner's refresh tokens on SQLite: a request token redeemed for the first of a chain, and
//! each refresh token traded once for the next. Both run on the writer thread in a transaction
//! of their own: the one writer makes each atomic without row locks, so neither happens twice
//! for one token.

use rusqlite::{OptionalExtension, Transaction, params};
use time::OffsetDateTime;

use super::rows::{decode_json, encode_json, millis};
use crate::store::{NewRefreshToken, RefreshOutcome};

/// Redeems a request token of a connected company once, storing the first refresh token of its
/// chain; `None` when the token is unknown, used, expired or its connection is gone.
pub(super) fn redeem(
    tx: &Transaction<'_>,
    token_hash: &str,
    refresh: &NewRefreshToken,
    now: OffsetDateTime,
) -> rusqlite::Result<Option<String>> {
    let user_id: Option<String> = tx
        .query_row(
            "UPDATE request_tokens SET used_ms = ?4 WHERE token_hash = ?1 AND partner_id = ?2 \
             AND company_id = ?3 AND used_ms IS NULL AND expires_ms > ?4 \
             AND EXISTS (SELECT 1 FROM connections c WHERE c.partner_id = ?2 \
                         AND c.company_id = ?3 AND c.disconnected_at IS NULL) \
             RETURNING user_id",
            params![
                token_hash,
                refresh.client_id,
                refresh.company_id,
                millis(now)
            ],
            |row| row.get(0),
        )
        .optional()?;
    if user_id.is_some() {
        insert_refresh(tx, refresh)?;
    }
    Ok(user_id)
}

fn insert_refresh(tx: &Transaction<'_>, token: &NewRefreshToken) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO refresh_tokens (token_hash, chain_id, client_id, company_id, scopes, \
         issued_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            token.token_hash,
            token.chain_id,
            token.client_id,
            token.company_id,
            encode_json(&token.scopes)?,
            millis(token.issued_at),
            millis(token.expires_at),
        ],
    )?;
    Ok(())
}

/// Trades a refresh token for its successor in the chain. A token presented twice revokes the
/// whole chain: one of its two holders is not the client.
pub(super) fn rotate(
    tx: &Transaction<'_>,
    token_hash: &str,
    asked: Option<&[String]>,
    next: &NewRefreshToken,
    now: OffsetDateTime,
) -> rusqlite::Result<RefreshOutcome> {
    type Presented = (String, String, String, i64, Option<i64>, Option<i64>);
    let presented: Option<Presented> = tx
        .query_row(
            "SELECT chain_id, company_id, scopes, expires_ms, used_ms, revoked_ms \
             FROM refresh_tokens WHERE token_hash = ?1 AND client_id = ?2",
            params![token_hash, next.client_id],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            },
        )
        .optional()?;
    let Some((chain_id, company_id, scopes, expires_ms, used_ms, revoked_ms)) = presented else {
        return Ok(RefreshOutcome::Invalid);
    };
    if revoked_ms.is_some() || expires_ms <= millis(now) {
        return Ok(RefreshOutcome::Invalid);
    }
    if used_ms.is_some() {
        // Used twice: one of the two holders is not the client. Nothing of the chain is
        // trusted any more.
        tx.execute(
            "UPDATE refresh_tokens SET revoked_ms = ?2 WHERE chain_id = ?1 AND revoked_ms IS NULL",
            params![chain_id, millis(now)],
        )?;
        return Ok(RefreshOutcome::Reused { chain_id });
    }
    let scopes: Vec<String> = decode_json(&scopes)?;
    if asked.is_some_and(|asked| asked.iter().any(|scope| !scopes.contains(scope))) {
        return Ok(RefreshOutcome::ScopeNotHeld);
    }
    tx.execute(
        "UPDATE refresh_tokens SET used_ms = ?2 WHERE token_hash = ?1",
        params![token_hash, millis(now)],
    )?;
    insert_refresh(
        tx,
        &NewRefreshToken {
            chain_id: chain_id.clone(),
            company_id: company_id.clone(),
            scopes: scopes.clone(),
            ..next.clone()
        },
    )?;
    Ok(RefreshOutcome::Rotated {
        chain_id,
        company_id,
        scopes,
    })
}
