//! `partner.toml`: the partner's own settings, each checked.

use base64::Engine;
use serde::Deserialize;

use super::PARTNER_TOML;
use crate::{
    partners::check::Report,
    store::{PartnerImport, RateLimit},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerToml {
    id: String,
    name: String,
    #[serde(default)]
    allowed_url_domains: Vec<String>,
    postback_url: Option<String>,
    postback_secret: Option<String>,
    rate_limit: Option<RateLimitToml>,
    /// What the partner's OAuth2 client may be granted.
    scopes: Option<Vec<String>>,
    /// Where a company connection sends the administrator (the first one).
    #[serde(default)]
    redirect_uris: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitToml {
    per_second: u32,
    burst: Option<u32>,
}

/// The partner's settings from `partner.toml` (an import without templates yet), or `None`
/// with its problems reported when it cannot be read at all. A setting with a problem is
/// reported and left out, so that every problem shows at once; the import is refused anyway.
pub(super) fn settings(text: &str, report: &mut Report) -> Option<PartnerImport> {
    let config: PartnerToml = match toml::from_str(text) {
        Ok(config) => config,
        Err(err) => {
            let line = err
                .span()
                .and_then(|span| text.get(..span.start))
                .map(|before| format!(" (line {})", before.matches('\n').count() + 1))
                .unwrap_or_default();
            report.problem(PARTNER_TOML, format!("{}{line}", err.message().trim_end()));
            return None;
        }
    };
    let mut problem = |message: String| report.problem(PARTNER_TOML, message);
    if !(is_identifier(&config.id, 64) && config.id.chars().all(|c| !c.is_ascii_uppercase())) {
        problem(format!(
            "partner id {:?} must be 1-64 lowercase letters, digits, '-', '_' or '.'",
            config.id
        ));
    }
    if config.name.trim().is_empty() {
        problem("partner name must not be empty".to_owned());
    }
    let allowed_url_domains = config
        .allowed_url_domains
        .iter()
        .filter_map(|d| checked_domain(d).map_err(&mut problem).ok())
        .collect();
    if let Some(url) = &config.postback_url {
        let is_http = url::Url::parse(url).is_ok_and(|parsed| {
            matches!(parsed.scheme(), "https" | "http") && parsed.host().is_some()
        });
        if !is_http {
            problem(format!("postback_url {url:?} must be an http(s) URL"));
        }
    }
    if let Some(Err(message)) = config.postback_secret.as_deref().map(check_postback_secret) {
        problem(message);
    }
    let scopes = config.scopes.unwrap_or_else(|| {
        crate::apps::clients::DEFAULT_PARTNER_SCOPES
            .map(str::to_owned)
            .to_vec()
    });
    if let Err(err) = crate::apps::clients::check_scopes(&scopes) {
        problem(format!("scopes: {err:#}"));
    }
    for uri in &config.redirect_uris {
        if let Err(err) = crate::apps::clients::check_redirect_uri(uri) {
            problem(format!("redirect_uris: {err:#}"));
        }
    }
    let rate_limit = config.rate_limit.and_then(|r| {
        if r.per_second == 0 {
            problem("rate_limit.per_second must be positive".to_owned());
            return None;
        }
        Some(RateLimit {
            per_second: r.per_second,
            burst: r.burst.unwrap_or(r.per_second).max(1),
        })
    });
    Some(PartnerImport {
        id: config.id,
        name: config.name,
        allowed_url_domains,
        postback_url: config.postback_url,
        postback_secret: config.postback_secret,
        generated_secret: String::new(),
        rate_limit,
        scopes,
        redirect_uris: config.redirect_uris,
        templates: Vec::new(),
    })
}

fn check_postback_secret(secret: &str) -> Result<(), String> {
    let malformed = || "postback_secret must look like whsec_<base64>".to_owned();
    let key = secret.strip_prefix("whsec_").ok_or_else(malformed)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| malformed())?;
    if bytes.len() < 24 {
        return Err("postback_secret must hold at least 24 bytes".to_owned());
    }
    Ok(())
}

/// Whether `id` is 1 to `max` ASCII letters, digits, `-`, `_` or `.`.
pub(super) fn is_identifier(id: &str, max: usize) -> bool {
    !id.is_empty()
        && id.len() <= max
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn checked_domain(domain: &str) -> Result<String, String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let is_domain = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !is_domain {
        return Err(format!(
            "allowed_url_domains entry {domain:?} is not a domain name"
        ));
    }
    Ok(domain)
}
