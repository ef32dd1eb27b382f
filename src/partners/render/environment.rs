//! The sandbox the sources are compiled into, and what static analysis says of them.

use std::collections::{BTreeMap, HashSet};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

use super::{CARD, RenderError, TEXT, TITLE, filters};

/// Steps one render may take (minijinja's "fuel"): enough for the Groundspan card of fifty
/// packages of fifty variants (the schema's maximum), while a loop gone wild stops within
/// milliseconds.
const FUEL: u64 = 2_000_000;

/// What the sources of a template that lacks one of them render.
const DEFAULT_TITLE: &str = "{{ alert.title or alert.templateId }}";
const DEFAULT_CARD: &str = "<article class=\"card\"><p>{{ title }}</p></article>";
const DEFAULT_TEXT: &str = "{{ title }}";

/// The fields of `alert` ([`super::values::alert_value`]).
const ALERT_FIELDS: [&str; 7] = [
    "extRef",
    "templateId",
    "msgType",
    "topic",
    "title",
    "createdAt",
    "expiresAt",
];

/// The sandbox with the three sources compiled into it; every source that does not compile is
/// reported.
pub(super) fn with_sources(
    sources: &BTreeMap<String, String>,
) -> Result<Environment<'static>, Vec<RenderError>> {
    let mut env = sandbox();
    let mut errors = Vec::new();
    for (name, default) in [
        (TITLE, DEFAULT_TITLE),
        (CARD, DEFAULT_CARD),
        (TEXT, DEFAULT_TEXT),
    ] {
        let source = sources.get(name).map_or(default, String::as_str);
        if let Err(err) = env.add_template_owned(name, source.to_owned()) {
            errors.push(RenderError {
                template: name,
                reason: describe(&err),
            });
        }
    }
    if errors.is_empty() {
        Ok(env)
    } else {
        Err(errors)
    }
}

fn sandbox() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_auto_escape_callback(|name| {
        if name == CARD {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.add_filter("url", filters::url);
    env.add_filter("datetime", filters::datetime);
    env.add_filter("date", filters::date);
    env.add_filter("money", filters::money);
    env
}

/// Which `alert` fields the sources read, by static analysis: `None` when any of them uses
/// `alert` other than through a plain attribute (`alert.title`).
pub(super) fn alert_fields_read(env: &Environment<'static>) -> Option<Vec<String>> {
    let mut read = Vec::new();
    for name in [TITLE, CARD, TEXT] {
        for variable in undeclared(env, name)? {
            if variable == "alert" {
                return None;
            }
            if let Some(field) = variable.strip_prefix("alert.") {
                let field = field.split('.').next().unwrap_or(field).to_owned();
                if !read.contains(&field) {
                    read.push(field);
                }
            }
        }
    }
    Some(read)
}

/// The variables each source reads that no rendering provides, by static analysis (which does
/// not know whether a use sits behind `is defined`).
pub(super) fn unknown_variables(env: &Environment<'static>) -> Vec<(&'static str, String)> {
    let mut unknown = Vec::new();
    for name in [TITLE, CARD, TEXT] {
        let mut found: Vec<String> = undeclared(env, name)
            .unwrap_or_default()
            .into_iter()
            .filter(|variable| !is_provided(env, name, variable))
            .collect();
        found.sort();
        unknown.extend(found.into_iter().map(|variable| (name, variable)));
    }
    unknown
}

fn is_provided(env: &Environment<'static>, source: &str, variable: &str) -> bool {
    let mut path = variable.split('.');
    let root = path.next().unwrap_or_default();
    match root {
        "metadata" => true,
        "alert" => path
            .next()
            .is_none_or(|field| ALERT_FIELDS.contains(&field)),
        // The title is rendered first; the card and the text see it.
        "title" => source != TITLE,
        _ => env.globals().any(|(global, _)| global == root),
    }
}

/// The variables a source reads without setting them, with the attributes read of each
/// (`alert.title`); `None` for a source the environment does not hold.
fn undeclared(env: &Environment<'static>, name: &str) -> Option<HashSet<String>> {
    let template = env.get_template(name).ok()?;
    Some(template.undeclared_variables(true))
}

/// One line for a human: what went wrong, and where in the template.
pub(super) fn describe(err: &minijinja::Error) -> String {
    let what = match err.kind() {
        ErrorKind::OutOfFuel => "the template used up its step budget".to_owned(),
        ErrorKind::UndefinedError => format!(
            "undefined value{}",
            err.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        _ => err
            .detail()
            .map_or_else(|| err.kind().to_string(), str::to_owned),
    };
    match err.line() {
        Some(line) => format!("{what} (line {line})"),
        None => what,
    }
}
