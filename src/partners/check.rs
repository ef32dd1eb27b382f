//! What `maestro partner check` and every import find out about a template before it may reach
//! the server (SPEC §4.1, "templates that cannot render are refused at import").
//!
//! For each template: the schema compiles (with the partner's URL policy); every source
//! compiles; and when the template directory holds `example.json` (a `metadata` document), the
//! example is read as an alert's metadata is (strictly, an object), validated against the
//! schema, and rendered through title, card and text exactly as an alert's would be, the card's
//! markup and the sizes checked. The example alert has `extRef` `example`, the template's id, an
//! empty `msgType` (as most alerts send), no `topic` or `title`, `createdAt` now and `expiresAt`
//! a week later. Every problem is reported, each naming its file inside the partner directory.
//!
//! A template without an example is compiled only: what it does with data shows when an alert
//! arrives. That is a warning, not a refusal (the example is optional, and imports written
//! before it existed keep working). Sources that read a variable no rendering has are warned
//! about too: static analysis cannot tell whether such a use sits behind `is defined`.

use std::{collections::BTreeMap, fmt};

use serde_json::Value;
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    AlertFields, Renderer, UrlPolicy, compile_schema,
    schema::{report_violations, truncate},
};
use crate::{
    error::Problem,
    input::json::{self, Unreadable},
};

pub const SCHEMA: &str = "schema.json";
pub const EXAMPLE: &str = "example.json";

/// The example alert's `extRef`.
const EXAMPLE_EXT_REF: &str = "example";
/// How long after its creation the example alert expires.
const EXAMPLE_LIFETIME: Duration = Duration::days(7);

/// One thing the check found, in the file it concerns (a path inside the partner directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

/// Everything checking a partner directory found.
#[derive(Debug, Default)]
pub struct Report {
    /// What stops the import.
    pub problems: Vec<Finding>,
    /// What the operator should know but that stops nothing.
    pub warnings: Vec<Finding>,
    /// The templates whose example rendered, each with the title it rendered.
    pub rendered: Vec<(String, String)>,
}

impl Report {
    pub fn problem(&mut self, file: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Finding {
            file: file.into(),
            message: message.into(),
        });
    }

    pub fn warning(&mut self, file: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Finding {
            file: file.into(),
            message: message.into(),
        });
    }

    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A template directory's files: `templates/<id>/`.
#[derive(Clone, Copy, Debug)]
pub struct TemplateFiles<'a> {
    pub id: &'a str,
    pub schema: Option<&'a str>,
    /// The render sources, by file name.
    pub sources: &'a BTreeMap<String, String>,
    pub example: Option<&'a str>,
}

impl TemplateFiles<'_> {
    /// A file of this template, as a path inside the partner directory.
    fn file(&self, name: &str) -> String {
        format!("templates/{}/{name}", self.id)
    }
}

/// Checks one template, adding what it finds to `report`; `now` is when the example alert was
/// created.
pub fn template(
    files: &TemplateFiles<'_>,
    policy: &UrlPolicy,
    now: OffsetDateTime,
    report: &mut Report,
) {
    let validator = schema(files, policy, report);
    let renderer = renderer(files, report);
    let Some(example_text) = files.example else {
        report.warning(
            format!("templates/{}", files.id),
            format!(
                "no {EXAMPLE}: nothing was rendered, so what the sources do with data shows \
                 only when an alert arrives; add a metadata document as {EXAMPLE} to have them \
                 rendered"
            ),
        );
        return;
    };
    let example = example(files, example_text, validator.as_ref(), report);
    if let (Some(example), Some(renderer)) = (example, renderer) {
        render_example(files, &renderer, &example, now, report);
    }
}

/// The compiled sources, or their problems; what they read that no rendering has is a warning.
fn renderer(files: &TemplateFiles<'_>, report: &mut Report) -> Option<Renderer> {
    let renderer = match Renderer::compile_each(files.sources) {
        Ok(renderer) => renderer,
        Err(errors) => {
            for err in errors {
                report.problem(files.file(err.template), err.reason);
            }
            return None;
        }
    };
    for (source, variable) in renderer.unknown_variables() {
        report.warning(
            files.file(source),
            format!(
                "reads `{variable}`, which no rendering has (a template sees `alert`, \
                 `metadata` and, but in the title, `title`): a rendering that reaches it \
                 fails unless it is tested with `is defined` or given a `default`"
            ),
        );
    }
    Some(renderer)
}

/// Renders the example through every source as the example alert's metadata.
fn render_example(
    files: &TemplateFiles<'_>,
    renderer: &Renderer,
    example: &Value,
    now: OffsetDateTime,
    report: &mut Report,
) {
    let created = now.replace_nanosecond(0).unwrap_or(now);
    let created_at = created.format(&Rfc3339).unwrap_or_default();
    let alert = AlertFields {
        ext_ref: EXAMPLE_EXT_REF,
        template_id: files.id,
        msg_type: "",
        topic: None,
        title: None,
        created_at: &created_at,
        expires_at: created + EXAMPLE_LIFETIME,
    };
    match renderer.render_each(&alert, example) {
        Ok(rendering) => report.rendered.push((files.id.to_owned(), rendering.title)),
        Err(errors) => {
            for err in errors {
                report.problem(files.file(err.template), err.reason);
            }
        }
    }
}

/// The compiled schema, or its problems.
fn schema(
    files: &TemplateFiles<'_>,
    policy: &UrlPolicy,
    report: &mut Report,
) -> Option<jsonschema::Validator> {
    let file = files.file(SCHEMA);
    let Some(text) = files.schema else {
        report.problem(
            file,
            "missing: a template needs the JSON Schema of its metadata",
        );
        return None;
    };
    let schema: Value = match serde_json::from_str(text) {
        Ok(schema) => schema,
        Err(err) => {
            report.problem(file, format!("not JSON: {err}"));
            return None;
        }
    };
    match compile_schema(&schema, policy.clone()) {
        Ok(validator) => Some(validator),
        Err(err) => {
            report.problem(file, truncate(err.to_string()));
            None
        }
    }
}

/// The example, read and validated as an alert's metadata is; `None` when it has a problem
/// that would stop an alert before rendering. Without a validator (the schema has a problem of
/// its own) the example is still rendered, so that every source's problem shows at once.
fn example(
    files: &TemplateFiles<'_>,
    text: &str,
    validator: Option<&jsonschema::Validator>,
    report: &mut Report,
) -> Option<Value> {
    let file = files.file(EXAMPLE);
    let value: Value = match json::read_strictly(text.as_bytes()) {
        Ok(value) => value,
        Err(Unreadable::Refused(refusal)) => {
            report.problem(file, at_pointer(&refusal.into_problem("")));
            return None;
        }
        Err(Unreadable::Malformed(err)) => {
            report.problem(file, format!("not JSON: {err}"));
            return None;
        }
    };
    if !value.is_object() {
        report.problem(file, "must be a JSON object, as an alert's metadata is");
        return None;
    }
    let mut problems = Vec::new();
    if let Some(validator) = validator {
        report_violations(validator, &value, "", &mut problems);
    }
    for problem in &problems {
        report.problem(file.clone(), at_pointer(problem));
    }
    problems.is_empty().then_some(value)
}

/// A problem of a document of its own: the JSON Pointer first, when it is not the whole document.
fn at_pointer(problem: &Problem) -> String {
    match problem.field() {
        Some(pointer) if !pointer.is_empty() => format!("{pointer}: {}", problem.message),
        _ => problem.message.clone(),
    }
}

#[cfg(test)]
mod tests;
