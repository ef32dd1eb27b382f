//! The App Center on PostgreSQL: clients, connections, request and refresh tokens; redeeming
//! and rotating tokens, which must never happen twice for one token, is `refresh_tokens.rs`.

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool, Row, postgres::PgRow};
use time::OffsetDateTime;

use super::{
    PostgresStore,
    json::{decode_json, encode_json},
    refresh_tokens::{redeem, rotate},
};
use crate::store::{
    AppCenterStore, ClientRecord, ClientRegistration, ConnectionRecord, NewRefreshToken,
    NewRequestToken, PartnerImport, RefreshOutcome, Revocation, SecretChange, StoreResult,
};

#[async_trait]
impl AppCenterStore for PostgresStore {
    async fn register_client(&self, client: &ClientRegistration) -> StoreResult<()> {
        self.timed(async {
            let mut db = self.pool.acquire().await?;
            register(&mut db, client, true).await.map(drop)
        })
        .await
    }

    async fn create_client(&self, client: &ClientRegistration) -> StoreResult<bool> {
        self.timed(async {
            let mut db = self.pool.acquire().await?;
            register(&mut db, client, false).await
        })
        .await
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        self.timed(async {
            let row = sqlx::query(
                "SELECT id, partner_id, scopes, redirect_uris, secret_hash, previous_secret_hash, \
                 previous_secret_until FROM clients WHERE id = $1",
            )
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(client_row).transpose()
        })
        .await
    }

    async fn change_client_secret(
        &self,
        change: &SecretChange,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        self.timed(change_secret(&self.pool, change, now)).await
    }

    async fn connect(&self, request: &NewRequestToken, now: OffsetDateTime) -> StoreResult<()> {
        self.timed(connect(&self.pool, request, now)).await
    }

    async fn connections(&self, company_id: &str) -> StoreResult<Vec<ConnectionRecord>> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT partner_id, company_id, connected_at, connected_by FROM connections \
                 WHERE company_id = $1 AND disconnected_at IS NULL ORDER BY partner_id",
            )
            .bind(company_id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(ConnectionRecord {
                        partner_id: row.try_get("partner_id")?,
                        company_id: row.try_get("company_id")?,
                        connected_at: row.try_get("connected_at")?,
                        connected_by: row.try_get("connected_by")?,
                    })
                })
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
        self.timed(disconnect(&self.pool, partner_id, company_id, now))
            .await
    }

    async fn redeem_request_token(
        &self,
        token_hash: &str,
        refresh: &NewRefreshToken,
        now: OffsetDateTime,
    ) -> StoreResult<Option<String>> {
        self.timed(redeem(&self.pool, token_hash, refresh, now))
            .await
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        asked: Option<&[String]>,
        next: &NewRefreshToken,
        now: OffsetDateTime,
    ) -> StoreResult<RefreshOutcome> {
        self.timed(rotate(&self.pool, token_hash, asked, next, now))
            .await
    }

    async fn revocations(&self) -> StoreResult<Vec<Revocation>> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT partner_id AS client_id, company_id, revoked_before, \
                 disconnected_at IS NOT NULL AS disconnected FROM connections \
                 WHERE revoked_before IS NOT NULL \
                 UNION ALL SELECT id, NULL, tokens_revoked_before, false FROM clients \
                 WHERE tokens_revoked_before IS NOT NULL",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(Revocation {
                        client_id: row.try_get("client_id")?,
                        company_id: row.try_get("company_id")?,
                        revoked_before: row.try_get("revoked_before")?,
                        disconnected: row.try_get("disconnected")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn revoked_grants(&self, since: OffsetDateTime) -> StoreResult<Vec<String>> {
        self.timed(
            sqlx::query_scalar(
                "SELECT DISTINCT chain_id FROM refresh_tokens WHERE revoked_at >= $1",
            )
            .bind(since)
            .fetch_all(&self.pool),
        )
        .await
    }

    async fn purge_expired_grants(&self, now: OffsetDateTime) -> StoreResult<u64> {
        self.timed(async {
            let request = sqlx::query("DELETE FROM request_tokens WHERE expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
            let refresh = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
            Ok(request + refresh)
        })
        .await
    }
}

/// A partner's import registers it as a client, in the import's transaction.
pub(super) async fn register_partner(
    db: &mut PgConnection,
    import: &PartnerImport,
) -> Result<(), sqlx::Error> {
    let client = ClientRegistration {
        id: import.id.clone(),
        partner_id: Some(import.id.clone()),
        scopes: import.scopes.clone(),
        redirect_uris: import.redirect_uris.clone(),
    };
    register(db, &client, true).await.map(drop)
}

/// Inserts the client, or (when `update`) updates its registration; true when inserted.
async fn register(
    db: &mut PgConnection,
    client: &ClientRegistration,
    update: bool,
) -> Result<bool, sqlx::Error> {
    let conflict = if update {
        "DO UPDATE SET partner_id = EXCLUDED.partner_id, scopes = EXCLUDED.scopes, \
         redirect_uris = EXCLUDED.redirect_uris, updated_at = EXCLUDED.updated_at"
    } else {
        "DO NOTHING"
    };
    let inserted: Option<bool> = sqlx::query_scalar(&format!(
        "INSERT INTO clients (id, partner_id, scopes, redirect_uris, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) {conflict} RETURNING (xmax = 0)"
    ))
    .bind(&client.id)
    .bind(&client.partner_id)
    .bind(encode_json(&client.scopes)?)
    .bind(encode_json(&client.redirect_uris)?)
    .bind(OffsetDateTime::now_utc())
    .fetch_optional(db)
    .await?;
    Ok(inserted.unwrap_or(false))
}

fn client_row(row: &PgRow) -> Result<ClientRecord, sqlx::Error> {
    Ok(ClientRecord {
        id: row.try_get("id")?,
        partner_id: row.try_get("partner_id")?,
        scopes: decode_json(&row.try_get::<String, _>("scopes")?)?,
        redirect_uris: decode_json(&row.try_get::<String, _>("redirect_uris")?)?,
        secret_hash: row.try_get("secret_hash")?,
        previous_secret_hash: row.try_get("previous_secret_hash")?,
        previous_secret_until: row.try_get("previous_secret_until")?,
    })
}

async fn change_secret(
    pool: &PgPool,
    change: &SecretChange,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE clients SET \
         previous_secret_hash = CASE WHEN $3::timestamptz IS NULL THEN NULL ELSE secret_hash END, \
         previous_secret_until = $3, secret_hash = $2, \
         tokens_revoked_before = COALESCE($4, tokens_revoked_before), updated_at = $5 \
         WHERE id = $1",
    )
    .bind(&change.client_id)
    .bind(&change.secret_hash)
    .bind(change.previous_valid_until)
    .bind(change.revoke_tokens_before)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 1 && change.revoke_tokens_before.is_some() {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL",
        )
        .bind(&change.client_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(changed == 1)
}

async fn connect(
    pool: &PgPool,
    request: &NewRequestToken,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // A pair connected again after a disconnection keeps its revocation: tokens issued before
    // that disconnection stay refused.
    sqlx::query(
        "INSERT INTO connections (partner_id, company_id, connected_at, connected_by) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (partner_id, company_id) DO UPDATE SET \
         connected_at = CASE WHEN connections.disconnected_at IS NULL \
           THEN connections.connected_at ELSE EXCLUDED.connected_at END, \
         connected_by = CASE WHEN connections.disconnected_at IS NULL \
           THEN connections.connected_by ELSE EXCLUDED.connected_by END, \
         disconnected_at = NULL",
    )
    .bind(&request.partner_id)
    .bind(&request.company_id)
    .bind(now)
    .bind(&request.user_id)
    .execute(&mut *tx)
    .await?;
    // Only the newest request token of a pair can be redeemed.
    sqlx::query(
        "DELETE FROM request_tokens WHERE partner_id = $1 AND company_id = $2 AND used_at IS NULL",
    )
    .bind(&request.partner_id)
    .bind(&request.company_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO request_tokens (token_hash, partner_id, company_id, user_id, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&request.token_hash)
    .bind(&request.partner_id)
    .bind(&request.company_id)
    .bind(&request.user_id)
    .bind(request.expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

async fn disconnect(
    pool: &PgPool,
    partner_id: &str,
    company_id: &str,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let disconnected = sqlx::query(
        "UPDATE connections SET disconnected_at = $3, revoked_before = $3 \
         WHERE partner_id = $1 AND company_id = $2 AND disconnected_at IS NULL",
    )
    .bind(partner_id)
    .bind(company_id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM request_tokens WHERE partner_id = $1 AND company_id = $2")
        .bind(partner_id)
        .bind(company_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $3 \
         WHERE client_id = $1 AND company_id = $2 AND revoked_at IS NULL",
    )
    .bind(partner_id)
    .bind(company_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(disconnected == 1)
}
