//! Partners (with their postback secrets) and templates.

use std::collections::BTreeMap;

use sqlx::{PgPool, Row, postgres::PgRow};
use time::OffsetDateTime;

use super::json::{decode_json, encode_json};
use crate::store::{ImportReport, PartnerImport, PartnerRecord, RateLimit, TemplateRecord};

pub(super) async fn import_partner(
    pool: &PgPool,
    import: &PartnerImport,
) -> Result<ImportReport, sqlx::Error> {
    let now = OffsetDateTime::now_utc();
    let mut tx = pool.begin().await?;
    // The upsert locks the partner row until commit, so concurrent imports of one partner take
    // turns and template versions never collide. `xmax = 0` tells an insert from an update.
    let created: bool = sqlx::query_scalar(
        "INSERT INTO partners (id, name, allowed_url_domains, postback_url, postback_secret, \
         rate_limit_per_sec, rate_limit_burst, updated_at) \
         VALUES ($1, $2, $3, $4, COALESCE($5, $6), $7, $8, $9) \
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, \
         allowed_url_domains = EXCLUDED.allowed_url_domains, postback_url = EXCLUDED.postback_url, \
         postback_secret = COALESCE($5, partners.postback_secret), \
         rate_limit_per_sec = EXCLUDED.rate_limit_per_sec, \
         rate_limit_burst = EXCLUDED.rate_limit_burst, updated_at = EXCLUDED.updated_at \
         RETURNING (xmax = 0)",
    )
    .bind(&import.id)
    .bind(&import.name)
    .bind(encode_json(&import.allowed_url_domains)?)
    .bind(&import.postback_url)
    .bind(&import.postback_secret)
    .bind(&import.generated_secret)
    .bind(import.rate_limit.map(|r| i64::from(r.per_second)))
    .bind(import.rate_limit.map(|r| i64::from(r.burst)))
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    super::app_center::register_partner(&mut tx, import).await?;

    let mut templates = Vec::with_capacity(import.templates.len());
    for template in &import.templates {
        let latest: Option<(i64, String)> = sqlx::query_as(
            "SELECT version, content_hash FROM templates WHERE partner_id = $1 AND template_id = $2 \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(&import.id)
        .bind(&template.template_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (version, changed) = match latest {
            Some((version, hash)) if hash == template.content_hash => (version, false),
            Some((version, _)) => (version + 1, true),
            None => (1, true),
        };
        if changed {
            sqlx::query(
                "INSERT INTO templates (partner_id, template_id, version, schema_json, \
                 sources_json, content_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&import.id)
            .bind(&template.template_id)
            .bind(version)
            .bind(&template.schema_json)
            .bind(encode_json(&template.sources)?)
            .bind(&template.content_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        templates.push((template.template_id.clone(), version, changed));
    }
    tx.commit().await?;
    Ok(ImportReport {
        partner_id: import.id.clone(),
        created,
        templates,
    })
}

const PARTNER_COLUMNS: &str = "id, name, allowed_url_domains, postback_url, postback_secret, \
                               previous_postback_secret, previous_secret_until, \
                               rate_limit_per_sec, rate_limit_burst";

fn partner_row(row: &PgRow) -> Result<PartnerRecord, sqlx::Error> {
    let per_second: Option<i64> = row.try_get("rate_limit_per_sec")?;
    let burst: Option<i64> = row.try_get("rate_limit_burst")?;
    Ok(PartnerRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        allowed_url_domains: decode_json(row.try_get("allowed_url_domains")?)?,
        postback_url: row.try_get("postback_url")?,
        postback_secret: row.try_get("postback_secret")?,
        previous_postback_secret: row.try_get("previous_postback_secret")?,
        previous_secret_until: row.try_get("previous_secret_until")?,
        rate_limit: RateLimit::from_columns(per_second, burst),
    })
}

/// The current secret becomes the previous one (still sealed: both are bound to the partner),
/// valid until `previous_until`; a previous one still in its grace period is dropped.
pub(super) async fn rotate_postback_secret(
    pool: &PgPool,
    partner_id: &str,
    sealed_secret: &str,
    previous_until: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "UPDATE partners SET previous_postback_secret = postback_secret, \
         previous_secret_until = $3, postback_secret = $2, updated_at = now() WHERE id = $1",
    )
    .bind(partner_id)
    .bind(sealed_secret)
    .bind(previous_until)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

pub(super) async fn partners(pool: &PgPool) -> Result<Vec<PartnerRecord>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {PARTNER_COLUMNS} FROM partners ORDER BY id"
    ))
    .fetch_all(pool)
    .await?;
    rows.iter().map(partner_row).collect()
}

pub(super) async fn partner_with_templates(
    pool: &PgPool,
    partner_id: &str,
) -> Result<Option<(PartnerRecord, Vec<TemplateRecord>)>, sqlx::Error> {
    let Some(row) = sqlx::query(&format!(
        "SELECT {PARTNER_COLUMNS} FROM partners WHERE id = $1"
    ))
    .bind(partner_id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let partner = partner_row(&row)?;
    let rows = sqlx::query(
        "SELECT DISTINCT ON (template_id) template_id, version, schema_json, sources_json, \
         content_hash, created_at FROM templates WHERE partner_id = $1 ORDER BY template_id, version DESC",
    )
    .bind(partner_id)
    .fetch_all(pool)
    .await?;
    let templates = rows
        .iter()
        .map(|row| {
            let sources: BTreeMap<String, String> = decode_json(row.try_get("sources_json")?)?;
            Ok(TemplateRecord {
                partner_id: partner_id.to_owned(),
                template_id: row.try_get("template_id")?,
                version: row.try_get("version")?,
                schema_json: row.try_get("schema_json")?,
                sources,
                content_hash: row.try_get("content_hash")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Some((partner, templates)))
}
