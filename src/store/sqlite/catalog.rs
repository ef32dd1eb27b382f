//! Signing keys, partners and templates.

use std::collections::BTreeMap;

use sqlx::{Row, SqlitePool, sqlite::SqliteRow};
use time::OffsetDateTime;

use super::rows::{decode_json, parse_ts, ts};
use crate::store::{
    ImportReport, PartnerImport, PartnerRecord, RateLimit, SigningKeyRecord, TemplateRecord,
};

pub(super) async fn signing_keys(pool: &SqlitePool) -> Result<Vec<SigningKeyRecord>, sqlx::Error> {
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
                created_at: parse_ts(row.try_get("created_at")?)?,
            })
        })
        .collect()
}

pub(super) async fn add_first_signing_key(
    pool: &SqlitePool,
    key: &SigningKeyRecord,
) -> Result<bool, sqlx::Error> {
    // A single statement under SQLite's one-writer lock: check and insert are atomic.
    let inserted = sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_pem, created_at) \
         SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
    )
    .bind(&key.kid)
    .bind(&key.algorithm)
    .bind(&key.private_pem)
    .bind(ts(key.created_at))
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

pub(super) async fn import_partner(
    pool: &SqlitePool,
    import: &PartnerImport,
) -> Result<ImportReport, sqlx::Error> {
    let now = ts(OffsetDateTime::now_utc());
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let created: bool =
        sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM partners WHERE id = ?)")
            .bind(&import.id)
            .fetch_one(&mut *tx)
            .await?;
    let domains = serde_json::to_string(&import.allowed_url_domains)
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO partners (id, name, allowed_url_domains, postback_url, postback_secret, \
         rate_limit_per_sec, rate_limit_burst, updated_at) VALUES (?1, ?2, ?3, ?4, COALESCE(?5, ?6), ?7, ?8, ?9) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
         allowed_url_domains = excluded.allowed_url_domains, postback_url = excluded.postback_url, \
         postback_secret = COALESCE(?5, partners.postback_secret), rate_limit_per_sec = excluded.rate_limit_per_sec, \
         rate_limit_burst = excluded.rate_limit_burst, updated_at = excluded.updated_at",
    )
    .bind(&import.id)
    .bind(&import.name)
    .bind(domains)
    .bind(&import.postback_url)
    .bind(&import.postback_secret)
    .bind(&import.generated_secret)
    .bind(import.rate_limit.map(|r| i64::from(r.per_second)))
    .bind(import.rate_limit.map(|r| i64::from(r.burst)))
    .bind(&now)
    .execute(&mut *tx)
    .await?;

    let mut templates = Vec::with_capacity(import.templates.len());
    for template in &import.templates {
        let latest: Option<(i64, String)> = sqlx::query_as(
            "SELECT version, content_hash FROM templates WHERE partner_id = ? AND template_id = ? \
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
            let sources = serde_json::to_string(&template.sources)
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            sqlx::query(
                "INSERT INTO templates (partner_id, template_id, version, schema_json, \
                 sources_json, content_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&import.id)
            .bind(&template.template_id)
            .bind(version)
            .bind(&template.schema_json)
            .bind(sources)
            .bind(&template.content_hash)
            .bind(&now)
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

fn partner_row(row: &SqliteRow) -> Result<PartnerRecord, sqlx::Error> {
    let per_second: Option<i64> = row.try_get("rate_limit_per_sec")?;
    let burst: Option<i64> = row.try_get("rate_limit_burst")?;
    Ok(PartnerRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        allowed_url_domains: decode_json(row.try_get("allowed_url_domains")?)?,
        postback_url: row.try_get("postback_url")?,
        postback_secret: row.try_get("postback_secret")?,
        rate_limit: per_second.zip(burst).map(|(per_second, burst)| RateLimit {
            per_second: per_second.clamp(1, i64::from(u32::MAX)) as u32,
            burst: burst.clamp(1, i64::from(u32::MAX)) as u32,
        }),
    })
}

pub(super) async fn partners(pool: &SqlitePool) -> Result<Vec<PartnerRecord>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {PARTNER_COLUMNS} FROM partners ORDER BY id"
    ))
    .fetch_all(pool)
    .await?;
    rows.iter().map(partner_row).collect()
}

pub(super) async fn partner_with_templates(
    pool: &SqlitePool,
    partner_id: &str,
) -> Result<Option<(PartnerRecord, Vec<TemplateRecord>)>, sqlx::Error> {
    let Some(row) = sqlx::query(&format!(
        "SELECT {PARTNER_COLUMNS} FROM partners WHERE id = ?"
    ))
    .bind(partner_id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let partner = partner_row(&row)?;
    let rows = sqlx::query(
        "SELECT t.template_id, t.version, t.schema_json, t.sources_json, t.content_hash \
         FROM templates t WHERE t.partner_id = ? AND t.version = \
         (SELECT MAX(version) FROM templates l WHERE l.partner_id = t.partner_id \
          AND l.template_id = t.template_id) ORDER BY t.template_id",
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
