//! The inbox page's sessions and used sign-in links on PostgreSQL.

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::store::{InboxOwner, InboxSession};

pub(super) async fn create(
    pool: &PgPool,
    session: &InboxSession,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO inbox_sessions (digest, company_id, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&session.digest)
    .bind(&session.owner.company_id)
    .bind(&session.owner.user_id)
    .bind(now)
    .bind(session.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn find(
    pool: &PgPool,
    digest: &str,
    now: OffsetDateTime,
) -> Result<Option<InboxSession>, sqlx::Error> {
    let found: Option<(String, String, OffsetDateTime)> = sqlx::query_as(
        "SELECT company_id, user_id, expires_at FROM inbox_sessions \
         WHERE digest = $1 AND ended_at IS NULL AND expires_at > $2",
    )
    .bind(digest)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(found.map(|(company_id, user_id, expires_at)| InboxSession {
        digest: digest.to_owned(),
        owner: InboxOwner {
            company_id,
            user_id,
        },
        expires_at,
    }))
}

pub(super) async fn end(
    pool: &PgPool,
    digest: &str,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE inbox_sessions SET ended_at = $2 \
         WHERE digest = $1 AND ended_at IS NULL AND expires_at > $2",
    )
    .bind(digest)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn use_link(
    pool: &PgPool,
    jti: &str,
    expires_at: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO inbox_sign_ins (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn purge(pool: &PgPool, now: OffsetDateTime) -> Result<u64, sqlx::Error> {
    let sessions = sqlx::query("DELETE FROM inbox_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    let links = sqlx::query("DELETE FROM inbox_sign_ins WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    Ok(sessions.rows_affected() + links.rows_affected())
}
