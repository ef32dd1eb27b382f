//! Reading a partner directory into a [`PartnerImport`], checking everything a running server
//! would otherwise trip over later: ids, domains, URLs, secrets, and that every schema and every
//! render source compiles.
//!
//! ```text
//! partner.toml                              id, name, allowed_url_domains, postback_url, ...
//! templates/<TEMPLATE_ID>/schema.json       JSON Schema of `metadata`
//! templates/<TEMPLATE_ID>/*.jinja           render sources (title, HTML card, text)
//! ```

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail, ensure};
use base64::Engine;
use include_dir::{Dir, include_dir};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Renderer, UrlPolicy, compile_schema};
use crate::store::{PartnerImport, RateLimit, TemplateSource};

/// The partners shipped inside the binary, imported into an empty database on first start.
pub static BUNDLED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/partners");

/// The render sources a template may have besides its schema.
pub const RENDER_SOURCES: [&str; 3] = ["title.jinja", "card.html.jinja", "text.jinja"];

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

/// Reads a partner directory on disk.
pub fn from_dir(dir: &Path) -> anyhow::Result<PartnerImport> {
    let mut files = BTreeMap::new();
    collect(dir, dir, &mut files)?;
    from_files(&files).with_context(|| format!("partner directory {}", dir.display()))
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            files.insert(path.strip_prefix(root)?.to_path_buf(), text);
        }
    }
    Ok(())
}

/// Every partner bundled into the binary.
pub fn bundled() -> anyhow::Result<Vec<PartnerImport>> {
    BUNDLED
        .dirs()
        .map(|dir| {
            let mut files = BTreeMap::new();
            collect_embedded(dir, dir.path(), &mut files);
            from_files(&files).with_context(|| format!("bundled partner {}", dir.path().display()))
        })
        .collect()
}

fn collect_embedded(dir: &Dir<'_>, root: &Path, files: &mut BTreeMap<PathBuf, String>) {
    for file in dir.files() {
        if let (Some(text), Ok(relative)) = (file.contents_utf8(), file.path().strip_prefix(root)) {
            files.insert(relative.to_path_buf(), text.to_owned());
        }
    }
    for sub in dir.dirs() {
        collect_embedded(sub, root, files);
    }
}

/// Builds the import from a partner directory's files, keyed by their path inside it.
pub fn from_files(files: &BTreeMap<PathBuf, String>) -> anyhow::Result<PartnerImport> {
    let toml_text = files
        .get(Path::new("partner.toml"))
        .context("partner.toml is missing")?;
    let config: PartnerToml = toml::from_str(toml_text).context("partner.toml")?;
    ensure!(
        is_identifier(&config.id, 64) && config.id.chars().all(|c| !c.is_ascii_uppercase()),
        "partner id {:?} must be 1-64 lowercase letters, digits, '-', '_' or '.'",
        config.id
    );
    ensure!(
        !config.name.trim().is_empty(),
        "partner name must not be empty"
    );
    let allowed_url_domains = config
        .allowed_url_domains
        .iter()
        .map(|d| checked_domain(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(url) = &config.postback_url {
        let parsed = url::Url::parse(url).with_context(|| format!("postback_url {url:?}"))?;
        ensure!(
            matches!(parsed.scheme(), "https" | "http") && parsed.host().is_some(),
            "postback_url must be an http(s) URL"
        );
    }
    if let Some(secret) = &config.postback_secret {
        let key = secret
            .strip_prefix("whsec_")
            .context("postback_secret must look like whsec_<base64>")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key)
            .context("postback_secret must look like whsec_<base64>")?;
        ensure!(
            bytes.len() >= 24,
            "postback_secret must hold at least 24 bytes"
        );
    }
    let scopes = config.scopes.unwrap_or_else(|| {
        crate::apps::clients::DEFAULT_PARTNER_SCOPES
            .map(str::to_owned)
            .to_vec()
    });
    crate::apps::clients::check_scopes(&scopes).context("scopes")?;
    for uri in &config.redirect_uris {
        crate::apps::clients::check_redirect_uri(uri).context("redirect_uris")?;
    }
    let rate_limit = config
        .rate_limit
        .map(|r| {
            ensure!(r.per_second > 0, "rate_limit.per_second must be positive");
            Ok(RateLimit {
                per_second: r.per_second,
                burst: r.burst.unwrap_or(r.per_second).max(1),
            })
        })
        .transpose()?;

    let policy = UrlPolicy::new(&allowed_url_domains);
    let mut templates: BTreeMap<String, (Option<String>, BTreeMap<String, String>)> =
        BTreeMap::new();
    for (path, text) in files {
        let parts: Vec<_> = path.iter().filter_map(|p| p.to_str()).collect();
        match parts.as_slice() {
            ["partner.toml"] => {}
            ["templates", id, "schema.json"] => {
                templates.entry((*id).to_owned()).or_default().0 = Some(text.clone());
            }
            ["templates", id, name] if RENDER_SOURCES.contains(name) => {
                templates
                    .entry((*id).to_owned())
                    .or_default()
                    .1
                    .insert((*name).to_owned(), text.clone());
            }
            _ => bail!(
                "unexpected file {} (known: partner.toml, templates/<ID>/schema.json, templates/<ID>/{{{}}})",
                path.display(),
                RENDER_SOURCES.join(",")
            ),
        }
    }
    let templates = templates
        .into_iter()
        .map(|(template_id, (schema, sources))| {
            ensure!(
                is_identifier(&template_id, 128),
                "template id {template_id:?} must be 1-128 letters, digits, '-', '_' or '.'"
            );
            let schema_json = schema
                .with_context(|| format!("templates/{template_id}/schema.json is missing"))?;
            let schema: serde_json::Value = serde_json::from_str(&schema_json)
                .with_context(|| format!("templates/{template_id}/schema.json is not JSON"))?;
            compile_schema(&schema, policy.clone())
                .with_context(|| format!("templates/{template_id}/schema.json"))?;
            Renderer::compile(&sources).with_context(|| format!("templates/{template_id}"))?;
            let content_hash = content_hash(&schema_json, &sources);
            Ok(TemplateSource {
                template_id,
                schema_json,
                sources,
                content_hash,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    Ok(PartnerImport {
        id: config.id,
        name: config.name,
        allowed_url_domains,
        postback_url: config.postback_url,
        postback_secret: config.postback_secret,
        generated_secret: generate_secret(),
        rate_limit,
        scopes,
        redirect_uris: config.redirect_uris,
        templates,
    })
}

fn is_identifier(id: &str, max: usize) -> bool {
    !id.is_empty()
        && id.len() <= max
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn checked_domain(domain: &str) -> anyhow::Result<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    ensure!(
        domain.contains('.')
            && domain.split('.').all(|label| !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')),
        "allowed_url_domains entry {domain:?} is not a domain name"
    );
    Ok(domain)
}

fn content_hash(schema: &str, sources: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(schema.as_bytes());
    for (name, source) in sources {
        hasher.update([0]);
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(source.as_bytes());
    }
    crate::digest::hex(&hasher.finalize())
}

/// A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_groundspan_partner_loads() {
        let partners = bundled().unwrap();
        let groundspan = partners.iter().find(|p| p.id == "groundspan").unwrap();
        assert_eq!(
            groundspan.allowed_url_domains,
            ["groundspan.com", "concur.com"]
        );
        assert_eq!(groundspan.templates.len(), 1);
        assert_eq!(groundspan.templates[0].template_id, "NOTIFY_TEMPLATE_ID");
        assert!(groundspan.generated_secret.starts_with("whsec_"));
    }

    fn files(entries: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
        entries
            .iter()
            .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn refuses_a_schema_that_does_not_compile() {
        let err = from_files(&files(&[
            ("partner.toml", "id = \"p\"\nname = \"P\"\n"),
            ("templates/T/schema.json", r#"{"type": "no-such-type"}"#),
        ]))
        .unwrap_err();
        assert!(format!("{err:#}").contains("schema.json"), "{err:#}");
    }

    #[test]
    fn refuses_a_render_source_that_does_not_compile() {
        let err = from_files(&files(&[
            ("partner.toml", "id = \"p\"\nname = \"P\"\n"),
            ("templates/T/schema.json", "{}"),
            ("templates/T/card.html.jinja", "<p>{% for x in %}</p>"),
        ]))
        .unwrap_err();
        assert!(format!("{err:#}").contains("card.html.jinja"), "{err:#}");
    }

    #[test]
    fn refuses_unknown_keys_and_files() {
        assert!(
            from_files(&files(&[(
                "partner.toml",
                "id = \"p\"\nname = \"P\"\nallowed_domains = []\n"
            )]))
            .is_err()
        );
        assert!(
            from_files(&files(&[
                ("partner.toml", "id = \"p\"\nname = \"P\"\n"),
                ("templates/T/schema.json", "{}"),
                ("templates/T/evil.sh", "rm -rf /"),
            ]))
            .is_err()
        );
    }

    #[test]
    fn the_content_hash_follows_the_content() {
        let a = from_files(&files(&[
            ("partner.toml", "id = \"p\"\nname = \"P\"\n"),
            ("templates/T/schema.json", "{}"),
        ]))
        .unwrap();
        let b = from_files(&files(&[
            ("partner.toml", "id = \"p\"\nname = \"P\"\n"),
            ("templates/T/schema.json", "{ }"),
        ]))
        .unwrap();
        assert_ne!(a.templates[0].content_hash, b.templates[0].content_hash);
    }
}
