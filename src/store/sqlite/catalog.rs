//! Partners (with their postback secrets) and templates.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::rows::{decode_json, encode_json, from_millis, millis, parse_ts, ts};
use crate::store::{ImportReport, PartnerImport, PartnerRecord, RateLimit, TemplateRecord};

pub(super) fn import_partner(
    db: &Connection,
    import: &PartnerImport,
) -> rusqlite::Result<ImportReport> {
    let now = ts(OffsetDateTime::now_utc());
    let created: bool = db.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM partners WHERE id = ?1)",
        [&import.id],
        |row| row.get(0),
    )?;
    db.execute(
        "INSERT INTO partners (id, name, allowed_url_domains, postback_url, postback_secret, \
         rate_limit_per_sec, rate_limit_burst, updated_at) \
         VALUES (?1, ?2, ?3, ?4, COALESCE(?5, ?6), ?7, ?8, ?9) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
         allowed_url_domains = excluded.allowed_url_domains, postback_url = excluded.postback_url, \
         postback_secret = COALESCE(?5, partners.postback_secret), \
         rate_limit_per_sec = excluded.rate_limit_per_sec, \
         rate_limit_burst = excluded.rate_limit_burst, updated_at = excluded.updated_at",
        params![
            import.id,
            import.name,
            encode_json(&import.allowed_url_domains)?,
            import.postback_url,
            import.postback_secret,
            import.generated_secret,
            import.rate_limit.map(|r| i64::from(r.per_second)),
            import.rate_limit.map(|r| i64::from(r.burst)),
            now,
        ],
    )?;

    super::app_center::register_partner(db, import)?;

    let mut templates = Vec::with_capacity(import.templates.len());
    for template in &import.templates {
        let latest: Option<(i64, String)> = db
            .query_row(
                "SELECT version, content_hash FROM templates WHERE partner_id = ?1 \
                 AND template_id = ?2 ORDER BY version DESC LIMIT 1",
                params![import.id, template.template_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let (version, changed) = match latest {
            Some((version, hash)) if hash == template.content_hash => (version, false),
            Some((version, _)) => (version + 1, true),
            None => (1, true),
        };
        if changed {
            db.execute(
                "INSERT INTO templates (partner_id, template_id, version, schema_json, \
                 sources_json, content_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    import.id,
                    template.template_id,
                    version,
                    template.schema_json,
                    encode_json(&template.sources)?,
                    template.content_hash,
                    now,
                ],
            )?;
        }
        templates.push((template.template_id.clone(), version, changed));
    }
    Ok(ImportReport {
        partner_id: import.id.clone(),
        created,
        templates,
    })
}

const PARTNER_COLUMNS: &str = "id, name, allowed_url_domains, postback_url, postback_secret, \
                               previous_postback_secret, previous_secret_until_ms, \
                               rate_limit_per_sec, rate_limit_burst";

fn partner_row(row: &Row<'_>) -> rusqlite::Result<PartnerRecord> {
    let per_second: Option<i64> = row.get("rate_limit_per_sec")?;
    let burst: Option<i64> = row.get("rate_limit_burst")?;
    Ok(PartnerRecord {
        id: row.get("id")?,
        name: row.get("name")?,
        allowed_url_domains: decode_json(&row.get::<_, String>("allowed_url_domains")?)?,
        postback_url: row.get("postback_url")?,
        postback_secret: row.get("postback_secret")?,
        previous_postback_secret: row.get("previous_postback_secret")?,
        previous_secret_until: row
            .get::<_, Option<i64>>("previous_secret_until_ms")?
            .map(from_millis)
            .transpose()?,
        rate_limit: RateLimit::from_columns(per_second, burst),
    })
}

/// The current secret becomes the previous one (still sealed: both are bound to the partner),
/// valid until `previous_until`; a previous one still in its grace period is dropped.
pub(super) fn rotate_postback_secret(
    db: &Connection,
    partner_id: &str,
    sealed_secret: &str,
    previous_until: OffsetDateTime,
) -> rusqlite::Result<bool> {
    let changed = db.execute(
        "UPDATE partners SET previous_postback_secret = postback_secret, \
         previous_secret_until_ms = ?3, postback_secret = ?2, updated_at = ?4 WHERE id = ?1",
        params![
            partner_id,
            sealed_secret,
            millis(previous_until),
            ts(OffsetDateTime::now_utc())
        ],
    )?;
    Ok(changed == 1)
}

pub(super) fn partner_count(db: &Connection) -> rusqlite::Result<i64> {
    db.query_row("SELECT COUNT(*) FROM partners", [], |row| row.get(0))
}

pub(super) fn partners(db: &Connection) -> rusqlite::Result<Vec<PartnerRecord>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {PARTNER_COLUMNS} FROM partners ORDER BY id"
    ))?;
    statement.query_map([], partner_row)?.collect()
}

pub(super) fn partner_with_templates(
    db: &Connection,
    partner_id: &str,
) -> rusqlite::Result<Option<(PartnerRecord, Vec<TemplateRecord>)>> {
    let Some(partner) = db
        .prepare_cached(&format!(
            "SELECT {PARTNER_COLUMNS} FROM partners WHERE id = ?1"
        ))?
        .query_row([partner_id], partner_row)
        .optional()?
    else {
        return Ok(None);
    };
    let mut statement = db.prepare_cached(
        "SELECT t.template_id, t.version, t.schema_json, t.sources_json, t.content_hash, \
         t.created_at FROM templates t WHERE t.partner_id = ?1 AND t.version = \
         (SELECT MAX(version) FROM templates l WHERE l.partner_id = t.partner_id \
          AND l.template_id = t.template_id) ORDER BY t.template_id",
    )?;
    let templates = statement
        .query_map([partner_id], |row| {
            let sources: BTreeMap<String, String> =
                decode_json(&row.get::<_, String>("sources_json")?)?;
            Ok(TemplateRecord {
                partner_id: partner_id.to_owned(),
                template_id: row.get("template_id")?,
                version: row.get("version")?,
                schema_json: row.get("schema_json")?,
                sources,
                content_hash: row.get("content_hash")?,
                created_at: parse_ts(&row.get::<_, String>("created_at")?)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some((partner, templates)))
}
