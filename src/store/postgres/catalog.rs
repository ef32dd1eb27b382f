//! Signing keys, partners and templates.

use std::collections::BTreeMap;

use sqlx::{PgPool, Row, postgres::PgRow};
use time::OffsetDateTime;

use crate::store::{
    ImportReport, PartnerImport, PartnerRecord, RateLimit, SigningKeyRecord, TemplateRecord,
};

/// Serialises first-key generation across instances (an arbitrary, fixed lock id).
const FIRST_KEY_LOCK: i64 = 0x6d61_6573_7472_6f01;

fn decode_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn encode_json<T: serde::Serialize>(value: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

pub(super) async fn signing_keys(pool: &PgPool) -> Result<Vec<SigningKeyRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT kid, algorithm, private_pem, created_at FROM signing_keys ORDER BY created_at, kid",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SigningKeyRecord {
                kid: row.try_get("kid")?,
                algorithm: row.try_get("algorithm")?,
                private_pem: row.try_get("private_pem")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
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
        rate_limit: RateLimit::from_columns(per_second, burst),
    })
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
         content_hash FROM templates WHERE partner_id = $1 ORDER BY template_id, version DESC",
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
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Some((partner, templates)))
}
