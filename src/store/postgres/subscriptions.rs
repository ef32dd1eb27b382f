//! Company notification subscriptions.

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::store::Subscription;

pub(super) async fn subscribe(pool: &PgPool, s: &Subscription) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO subscriptions (partner_id, company_id, object_type, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(&s.partner_id)
    .bind(&s.company_id)
    .bind(&s.object_type)
    .bind(OffsetDateTime::now_utc())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

pub(super) async fn unsubscribe(pool: &PgPool, s: &Subscription) -> Result<bool, sqlx::Error> {
    let removed = sqlx::query(
        "DELETE FROM subscriptions WHERE partner_id = $1 AND company_id = $2 AND object_type = $3",
    )
    .bind(&s.partner_id)
    .bind(&s.company_id)
    .bind(&s.object_type)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(removed == 1)
}

pub(super) async fn of_company(
    pool: &PgPool,
    company_id: &str,
) -> Result<Vec<Subscription>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT partner_id, company_id, object_type FROM subscriptions WHERE company_id = $1 \
         ORDER BY partner_id, object_type",
    )
    .bind(company_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(partner_id, company_id, object_type)| Subscription {
            partner_id,
            company_id,
            object_type,
        })
        .collect())
}
