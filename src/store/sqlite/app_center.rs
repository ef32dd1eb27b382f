//! The App Center on SQLite: clients, connections, request and refresh tokens (redeemed and
//! rotated in `refresh_tokens.rs`). Every change runs on the writer thread in a transaction of
//! its own.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use time::OffsetDateTime;

use super::{
    SqliteStore,
    refresh_tokens::{redeem, rotate},
    rows::{decode_json, encode_json, from_millis, millis, parse_ts, ts},
};
use crate::store::{
    AppCenterStore, ClientRecord, ClientRegistration, ConnectionRecord, NewRefreshToken,
    NewRequestToken, PartnerImport, RefreshOutcome, Revocation, SecretChange, StoreResult,
};

#[async_trait]
impl AppCenterStore for SqliteStore {
    async fn register_client(&self, client: &ClientRegistration) -> StoreResult<()> {
        let client = client.clone();
        self.writer
            .exclusive(move |tx| register(tx, &client, true).map(drop))
            .await
    }

    async fn create_client(&self, client: &ClientRegistration) -> StoreResult<bool> {
        let client = client.clone();
        self.writer
            .exclusive(move |tx| register(tx, &client, false))
            .await
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        let client_id = client_id.to_owned();
        self.readers
            .read(move |db| {
                db.prepare_cached(
                    "SELECT id, partner_id, scopes, redirect_uris, secret_hash, \
                     previous_secret_hash, previous_secret_until_ms FROM clients WHERE id = ?1",
                )?
                .query_row([client_id], client_row)
                .optional()
            })
            .await
    }

    async fn change_client_secret(
        &self,
        change: &SecretChange,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let change = change.clone();
        self.writer
            .exclusive(move |tx| change_secret(tx, &change, now))
            .await
    }

    async fn connect(&self, request: &NewRequestToken, now: OffsetDateTime) -> StoreResult<()> {
        let request = request.clone();
        self.writer
            .exclusive(move |tx| connect(tx, &request, now))
            .await
    }

    async fn connections(&self, company_id: &str) -> StoreResult<Vec<ConnectionRecord>> {
        let company_id = company_id.to_owned();
        self.readers
            .read(move |db| {
                db.prepare_cached(
                    "SELECT partner_id, company_id, connected_at, connected_by FROM connections \
                     WHERE company_id = ?1 AND disconnected_at IS NULL ORDER BY partner_id",
                )?
                .query_map([company_id], |row| {
                    Ok(ConnectionRecord {
                        partner_id: row.get(0)?,
                        company_id: row.get(1)?,
                        connected_at: parse_ts(&row.get::<_, String>(2)?)?,
                        connected_by: row.get(3)?,
                    })
                })?
                .collect()
            })
            .await
    }

    async fn disconnect(
        &self,
        partner_id: &str,
        company_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let (partner_id, company_id) = (partner_id.to_owned(), company_id.to_owned());
        self.writer
            .exclusive(move |tx| disconnect(tx, &partner_id, &company_id, now))
            .await
    }

    async fn redeem_request_token(
        &self,
        token_hash: &str,
        refresh: &NewRefreshToken,
        now: OffsetDateTime,
    ) -> StoreResult<Option<String>> {
        let (token_hash, refresh) = (token_hash.to_owned(), refresh.clone());
        self.writer
            .exclusive(move |tx| redeem(tx, &token_hash, &refresh, now))
            .await
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        asked: Option<&[String]>,
        next: &NewRefreshToken,
        now: OffsetDateTime,
    ) -> StoreResult<RefreshOutcome> {
        let (token_hash, next) = (token_hash.to_owned(), next.clone());
        let asked = asked.map(<[String]>::to_vec);
        self.writer
            .exclusive(move |tx| rotate(tx, &token_hash, asked.as_deref(), &next, now))
            .await
    }

    async fn revocations(&self) -> StoreResult<Vec<Revocation>> {
        self.readers.read(revocations).await
    }

    async fn revoked_grants(&self, since: OffsetDateTime) -> StoreResult<Vec<String>> {
        self.readers
            .read(move |db| {
                db.prepare_cached(
                    "SELECT DISTINCT chain_id FROM refresh_tokens WHERE revoked_ms >= ?1",
                )?
                .query_map([millis(since)], |row| row.get(0))?
                .collect()
            })
            .await
    }

    async fn purge_expired_grants(&self, now: OffsetDateTime) -> StoreResult<u64> {
        self.writer
            .exclusive(move |tx| {
                let request = tx.execute(
                    "DELETE FROM request_tokens WHERE expires_ms <= ?1",
                    [millis(now)],
                )?;
                let refresh = tx.execute(
                    "DELETE FROM refresh_tokens WHERE expires_ms <= ?1",
                    [millis(now)],
                )?;
                Ok((request + refresh) as u64)
            })
            .await
    }
}

/// A partner's import registers it as a client, in the import's transaction.
pub(super) fn register_partner(db: &Connection, import: &PartnerImport) -> rusqlite::Result<()> {
    let client = ClientRegistration {
        id: import.id.clone(),
        partner_id: Some(import.id.clone()),
        scopes: import.scopes.clone(),
        redirect_uris: import.redirect_uris.clone(),
    };
    register(db, &client, true).map(drop)
}

/// Inserts the client, or (when `update`) updates its registration; true when inserted.
fn register(tx: &Connection, client: &ClientRegistration, update: bool) -> rusqlite::Result<bool> {
    let now = ts(OffsetDateTime::now_utc());
    let (scopes, redirect_uris) = (
        encode_json(&client.scopes)?,
        encode_json(&client.redirect_uris)?,
    );
    let exists = tx
        .query_row("SELECT 1 FROM clients WHERE id = ?1", [&client.id], |_| {
            Ok(())
        })
        .optional()?
        .is_some();
    if !exists {
        tx.execute(
            "INSERT INTO clients (id, partner_id, scopes, redirect_uris, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![client.id, client.partner_id, scopes, redirect_uris, now],
        )?;
    } else if update {
        tx.execute(
            "UPDATE clients SET partner_id = ?2, scopes = ?3, redirect_uris = ?4, updated_at = ?5 \
             WHERE id = ?1",
            params![client.id, client.partner_id, scopes, redirect_uris, now],
        )?;
    }
    Ok(!exists)
}

fn client_row(row: &Row<'_>) -> rusqlite::Result<ClientRecord> {
    Ok(ClientRecord {
        id: row.get(0)?,
        partner_id: row.get(1)?,
        scopes: decode_json(&row.get::<_, String>(2)?)?,
        redirect_uris: decode_json(&row.get::<_, String>(3)?)?,
        secret_hash: row.get(4)?,
        previous_secret_hash: row.get(5)?,
        previous_secret_until: row.get::<_, Option<i64>>(6)?.map(from_millis).transpose()?,
    })
}

fn change_secret(
    tx: &Transaction<'_>,
    change: &SecretChange,
    now: OffsetDateTime,
) -> rusqlite::Result<bool> {
    let changed = tx.execute(
        "UPDATE clients SET \
         previous_secret_hash = CASE WHEN ?3 IS NULL THEN NULL ELSE secret_hash END, \
         previous_secret_until_ms = ?3, secret_hash = ?2, \
         tokens_revoked_before_ms = COALESCE(?4, tokens_revoked_before_ms), updated_at = ?5 \
         WHERE id = ?1",
        params![
            change.client_id,
            change.secret_hash,
            change.previous_valid_until.map(millis),
            change.revoke_tokens_before.map(millis),
            ts(now),
        ],
    )?;
    if changed == 1 && change.revoke_tokens_before.is_some() {
        tx.execute(
            "UPDATE refresh_tokens SET revoked_ms = ?2 WHERE client_id = ?1 AND revoked_ms IS NULL",
            params![change.client_id, millis(now)],
        )?;
    }
    Ok(changed == 1)
}

fn connect(
    tx: &Transaction<'_>,
    request: &NewRequestToken,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    // A pair connected again after a disconnection keeps its revocation: tokens issued before
    // that disconnection stay refused.
    tx.execute(
        "INSERT INTO connections (partner_id, company_id, connected_at, connected_by) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (partner_id, company_id) DO UPDATE SET \
         connected_at = CASE WHEN disconnected_at IS NULL THEN connected_at ELSE excluded.connected_at END, \
         connected_by = CASE WHEN disconnected_at IS NULL THEN connected_by ELSE excluded.connected_by END, \
         disconnected_at = NULL",
        params![request.partner_id, request.company_id, ts(now), request.user_id],
    )?;
    // Only the newest request token of a pair can be redeemed.
    tx.execute(
        "DELETE FROM request_tokens WHERE partner_id = ?1 AND company_id = ?2 AND used_ms IS NULL",
        params![request.partner_id, request.company_id],
    )?;
    tx.execute(
        "INSERT INTO request_tokens (token_hash, partner_id, company_id, user_id, expires_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            request.token_hash,
            request.partner_id,
            request.company_id,
            request.user_id,
            millis(request.expires_at),
        ],
    )?;
    Ok(())
}

fn disconnect(
    tx: &Transaction<'_>,
    partner_id: &str,
    company_id: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<bool> {
    let disconnected = tx.execute(
        "UPDATE connections SET disconnected_at = ?3, revoked_before_ms = ?4 \
         WHERE partner_id = ?1 AND company_id = ?2 AND disconnected_at IS NULL",
        params![partner_id, company_id, ts(now), millis(now)],
    )?;
    tx.execute(
        "DELETE FROM request_tokens WHERE partner_id = ?1 AND company_id = ?2",
        params![partner_id, company_id],
    )?;
    tx.execute(
        "UPDATE refresh_tokens SET revoked_ms = ?3 \
         WHERE client_id = ?1 AND company_id = ?2 AND revoked_ms IS NULL",
        params![partner_id, company_id, millis(now)],
    )?;
    Ok(disconnected == 1)
}

fn revocations(db: &Connection) -> rusqlite::Result<Vec<Revocation>> {
    let mut found: Vec<Revocation> = db
        .prepare_cached(
            "SELECT partner_id, company_id, revoked_before_ms, disconnected_at IS NOT NULL \
             FROM connections WHERE revoked_before_ms IS NOT NULL",
        )?
        .query_map([], |row| {
            Ok(Revocation {
                client_id: row.get(0)?,
                company_id: Some(row.get(1)?),
                revoked_before: from_millis(row.get(2)?)?,
                disconnected: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let clients = db
        .prepare_cached(
            "SELECT id, tokens_revoked_before_ms FROM clients \
             WHERE tokens_revoked_before_ms IS NOT NULL",
        )?
        .query_map([], |row| {
            Ok(Revocation {
                client_id: row.get(0)?,
                company_id: None,
                revoked_before: from_millis(row.get(1)?)?,
                disconnected: false,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    found.extend(clients);
    Ok(found)
}
