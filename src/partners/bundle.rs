//! Reading a partner directory into a [`PartnerImport`], checking everything a running server
//! would otherwise trip over later: ids, domains, URLs, secrets, that every schema and every
//! render source compiles, and that each template renders its example ([`super::check`]). Every
//! way a partner is imported (the CLI, the bundled partners on first start, the tests) goes
//! through [`check_files`], so none skips the check.
//!
//! ```text
//! partner.toml                              id, name, allowed_url_domains, postback_url, ...
//! templates/<TEMPLATE_ID>/schema.json       JSON Schema of `metadata`
//! templates/<TEMPLATE_ID>/*.jinja           render sources (title, HTML card, text)
//! templates/<TEMPLATE_ID>/example.json      optional: a `metadata` document the check renders
//! ```

mod partner_toml;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::Context;
use base64::Engine;
use include_dir::{Dir, include_dir};
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use self::partner_toml::{is_identifier, settings};
use super::{
    UrlPolicy,
    check::{self, EXAMPLE, Report, SCHEMA, TemplateFiles},
};
use crate::store::{PartnerImport, TemplateSource};

/// The partners shipped inside the binary, imported into an empty database on first start.
pub static BUNDLED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/partners");

/// The render sources a template may have besides its schema.
pub const RENDER_SOURCES: [&str; 3] = ["title.jinja", "card.html.jinja", "text.jinja"];

const PARTNER_TOML: &str = "partner.toml";

/// A partner directory, read and checked: the import exactly when the check found no problem.
#[derive(Debug)]
pub struct Checked {
    pub report: Report,
    pub import: Option<PartnerImport>,
}

/// Reads and checks a partner directory on disk; an error only when it cannot be read.
pub fn check_dir(dir: &Path) -> anyhow::Result<Checked> {
    let mut files = BTreeMap::new();
    collect(dir, dir, &mut files)?;
    Ok(check_files(&files))
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

/// Builds the import from a partner directory's files, keyed by their path inside it; refused
/// with every problem the check found. Its warnings are logged.
pub fn from_files(files: &BTreeMap<PathBuf, String>) -> anyhow::Result<PartnerImport> {
    let Checked { report, import } = check_files(files);
    for warning in &report.warnings {
        tracing::warn!(%warning, "partner directory");
    }
    import.ok_or_else(|| refusal(&report))
}

/// The error for a directory whose check found problems: every one of them, a line each.
pub fn refusal(report: &Report) -> anyhow::Error {
    let count = report.problems.len();
    let lines: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    anyhow::anyhow!(
        "{count} problem{}:\n{}",
        if count == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

/// A template directory's files as read.
#[derive(Default)]
struct TemplateDir {
    schema: Option<String>,
    sources: BTreeMap<String, String>,
    example: Option<String>,
}

/// Reads and checks a partner directory's files, keyed by their path inside it.
pub fn check_files(files: &BTreeMap<PathBuf, String>) -> Checked {
    let mut report = Report::default();
    let mut partner_toml = None;
    let mut templates: BTreeMap<String, TemplateDir> = BTreeMap::new();
    for (path, text) in files {
        let parts: Vec<_> = path.iter().filter_map(|p| p.to_str()).collect();
        match parts.as_slice() {
            [PARTNER_TOML] => partner_toml = Some(text),
            ["templates", id, name] => {
                let template = templates.entry((*id).to_owned()).or_default();
                match *name {
                    SCHEMA => template.schema = Some(text.clone()),
                    EXAMPLE => template.example = Some(text.clone()),
                    name if RENDER_SOURCES.contains(&name) => {
                        template.sources.insert(name.to_owned(), text.clone());
                    }
                    _ => unexpected(path, &mut report),
                }
            }
            _ => unexpected(path, &mut report),
        }
    }
    let Some(partner_toml) = partner_toml else {
        report.problem(PARTNER_TOML, "missing");
        return Checked {
            report,
            import: None,
        };
    };
    let Some(settings) = settings(partner_toml, &mut report) else {
        return Checked {
            report,
            import: None,
        };
    };

    let policy = UrlPolicy::new(&settings.allowed_url_domains);
    let now = OffsetDateTime::now_utc();
    for (template_id, template) in &templates {
        if !is_identifier(template_id, 128) {
            report.problem(
                format!("templates/{template_id}"),
                format!(
                    "template id {template_id:?} must be 1-128 letters, digits, '-', '_' or '.'"
                ),
            );
        }
        let files = TemplateFiles {
            id: template_id,
            schema: template.schema.as_deref(),
            sources: &template.sources,
            example: template.example.as_deref(),
        };
        check::template(&files, &policy, now, &mut report);
    }
    if !report.passed() {
        return Checked {
            report,
            import: None,
        };
    }
    let templates = templates
        .into_iter()
        .map(|(template_id, template)| {
            let schema_json = template.schema.unwrap_or_default();
            let content_hash = content_hash(&schema_json, &template.sources);
            TemplateSource {
                template_id,
                schema_json,
                sources: template.sources,
                content_hash,
            }
        })
        .collect();
    let import = PartnerImport {
        templates,
        generated_secret: generate_secret(),
        ..settings
    };
    Checked {
        report,
        import: Some(import),
    }
}

fn unexpected(path: &Path, report: &mut Report) {
    report.problem(
        path.display().to_string(),
        format!(
            "not a file a partner directory holds (known: {PARTNER_TOML}, templates/<ID>/{SCHEMA}, \
             templates/<ID>/{EXAMPLE}, templates/<ID>/{{{}}})",
            RENDER_SOURCES.join(",")
        ),
    );
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
mod tests;
