//! Rendering an alert through its template: a title, an HTML card and a plain-text fallback.
//!
//! The engine is minijinja, set up as a sandbox for templates that an operator imports and data
//! that a partner sends ([`environment`]):
//! - HTML auto-escaping for `card.html.jinja`; the title and the text are plain text, escaped
//!   wherever they are later shown;
//! - strict undefined: a misspelt field is an error, not an empty string (`is defined` and
//!   `default` serve optional fields);
//! - a step budget (fuel) per render, and a cap on the size of what comes out;
//! - no loader: nothing is read from disk, and the engine is built without `include`,
//!   `extends`, `import` and macros;
//! - the markup produced is checked ([`super::markup`]): links and images only `http(s)`, links
//!   open in a new tab with `rel="noopener noreferrer"`, images carry `alt`, no scripts.
//!
//! Each template version is compiled once (by the catalogue), then rendered per alert, through
//! a small cache of renderings ([`cache`]). The pieces: [`environment`] (the sandbox and the
//! static analysis of the sources), [`filters`] (`url`, `datetime`, `date`, `money`),
//! [`values`] (an alert and its metadata as template values), [`cache`].

mod cache;
mod environment;
mod filters;
mod values;

use std::collections::BTreeMap;

use minijinja::{Environment, Value};

use self::cache::RenderingCache;
use super::markup;
use crate::store::Rendering;

pub const TITLE: &str = "title.jinja";
pub const CARD: &str = "card.html.jinja";
pub const TEXT: &str = "text.jinja";

/// What a template may produce at most; a larger card is refused (400), not shown.
const MAX_HTML_BYTES: usize = 512 * 1024;
const MAX_TEXT_BYTES: usize = 64 * 1024;
const MAX_TITLE_CHARS: usize = 200;

/// The common fields of an alert, as templates see them under `alert`.
#[derive(Clone, Copy, Debug)]
pub struct AlertFields<'a> {
    pub ext_ref: &'a str,
    pub template_id: &'a str,
    pub msg_type: &'a str,
    pub topic: Option<&'a str>,
    pub title: Option<&'a str>,
    pub created_at: &'a str,
    pub expires_at: time::OffsetDateTime,
}

/// Why a source could not be compiled or an alert rendered; said to the partner in a 400, and
/// to the operator by `maestro partner check`. `template` is the source's file name.
#[derive(Debug, thiserror::Error)]
#[error("{template}: {reason}")]
pub struct RenderError {
    pub template: &'static str,
    pub reason: String,
}

/// A template version's sources, compiled.
pub struct Renderer {
    env: Environment<'static>,
    cache: RenderingCache,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Renderer")
    }
}

impl Renderer {
    /// Compiles a template's render sources (by file name); a missing one gets a plain default.
    pub fn compile(sources: &BTreeMap<String, String>) -> anyhow::Result<Renderer> {
        Renderer::compile_each(sources).map_err(|errors| {
            let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::anyhow!(reasons.join("; "))
        })
    }

    /// Like [`Renderer::compile`], with every source that does not compile, not only the first.
    pub fn compile_each(sources: &BTreeMap<String, String>) -> Result<Renderer, Vec<RenderError>> {
        let env = environment::with_sources(sources)?;
        let cache = RenderingCache::new(environment::alert_fields_read(&env));
        Ok(Renderer { env, cache })
    }

    /// What the sources read that no alert ever has (a variable other than `alert`, `metadata`
    /// and the card's and text's `title`, or an `alert` field that does not exist), each with
    /// the source that reads it. Found without rendering: a use behind `is defined` or
    /// `default` is harmless, so this is a hint, not a refusal.
    pub fn unknown_variables(&self) -> Vec<(&'static str, String)> {
        environment::unknown_variables(&self.env)
    }

    /// Renders the alert: its title first (the card and the text may show it as `title`).
    pub fn render(
        &self,
        alert: &AlertFields<'_>,
        metadata: &serde_json::Value,
    ) -> Result<Rendering, RenderError> {
        let inputs = Inputs::new(alert, metadata);
        let title = self.title(alert, &inputs)?;
        let context = inputs.with_title(&title);
        let html = self.card(&context)?;
        let text = self.text(&context)?;
        Ok(Rendering { title, html, text })
    }

    /// Renders the alert as [`Renderer::render`] does, but on through every source when one
    /// fails (after a failed title, the card and the text see the title an empty one falls back
    /// to), so that every source's problem is reported at once.
    pub fn render_each(
        &self,
        alert: &AlertFields<'_>,
        metadata: &serde_json::Value,
    ) -> Result<Rendering, Vec<RenderError>> {
        let mut errors = Vec::new();
        let inputs = Inputs::new(alert, metadata);
        let title = self.title(alert, &inputs).unwrap_or_else(|err| {
            errors.push(err);
            fallback_title(alert)
        });
        let context = inputs.with_title(&title);
        let html = self.card(&context).map_err(|err| errors.push(err)).ok();
        let text = self.text(&context).map_err(|err| errors.push(err)).ok();
        match (html, text) {
            (Some(html), Some(text)) if errors.is_empty() => Ok(Rendering { title, html, text }),
            _ => Err(errors),
        }
    }

    fn title(&self, alert: &AlertFields<'_>, inputs: &Inputs) -> Result<String, RenderError> {
        let context = Value::from_pairs([
            ("alert", inputs.alert.clone()),
            ("metadata", inputs.metadata.clone()),
        ]);
        let raw = self.run(TITLE, &context)?;
        Ok(match tidy_title(&raw) {
            title if title.is_empty() => fallback_title(alert),
            title => title,
        })
    }

    fn card(&self, context: &Value) -> Result<String, RenderError> {
        let html = self.run(CARD, context)?;
        if html.len() > MAX_HTML_BYTES {
            return Err(too_large(CARD, MAX_HTML_BYTES));
        }
        markup::check(&html).map_err(|reason| RenderError {
            template: CARD,
            reason,
        })?;
        Ok(html.trim().to_owned())
    }

    fn text(&self, context: &Value) -> Result<String, RenderError> {
        let text = self.run(TEXT, context)?;
        if text.len() > MAX_TEXT_BYTES {
            return Err(too_large(TEXT, MAX_TEXT_BYTES));
        }
        Ok(text.trim().to_owned())
    }

    fn run(&self, name: &'static str, context: &Value) -> Result<String, RenderError> {
        let failed = |err: minijinja::Error| RenderError {
            template: name,
            reason: environment::describe(&err),
        };
        self.env
            .get_template(name)
            .map_err(failed)?
            .render(context)
            .map_err(failed)
    }
}

/// An alert's fields and metadata as template values, made once per rendering.
struct Inputs {
    alert: Value,
    metadata: Value,
}

impl Inputs {
    fn new(alert: &AlertFields<'_>, metadata: &serde_json::Value) -> Inputs {
        Inputs {
            alert: values::alert_value(alert),
            metadata: values::json_value(metadata),
        }
    }

    /// What the card and the text see: the inputs and the rendered title.
    fn with_title(self, title: &str) -> Value {
        Value::from_pairs([
            ("alert", self.alert),
            ("metadata", self.metadata),
            ("title", Value::from(title)),
        ])
    }
}

/// The title when the title source renders nothing: the alert's own, else the template's id.
fn fallback_title(alert: &AlertFields<'_>) -> String {
    alert
        .title
        .filter(|t| !t.trim().is_empty())
        .unwrap_or(alert.template_id)
        .to_owned()
}

fn too_large(template: &'static str, limit: usize) -> RenderError {
    RenderError {
        template,
        reason: format!("the rendering is larger than {limit} bytes"),
    }
}

/// A title is one line: whitespace collapsed, at most [`MAX_TITLE_CHARS`].
fn tidy_title(raw: &str) -> String {
    let mut title = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = title.char_indices().nth(MAX_TITLE_CHARS) {
        title.truncate(cut);
        title.push('…');
    }
    title
}

#[cfg(test)]
mod tests;
