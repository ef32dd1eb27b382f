//! A template's metadata schema: compiled for the partner's URL policy, and its refusals as
//! problems with JSON Pointers — in the same words for an alert's `metadata` and for a
//! template's `example.json`.

use jsonschema::{Validator, error::ValidationErrorKind};
use serde_json::Value;

use super::UrlPolicy;
use crate::{
    error::{ErrorCode, Problem},
    input::pointer_token,
};

/// The JSON Schema `format` a template uses for a link or image URL: checked against the
/// partner's [`UrlPolicy`].
pub const PARTNER_URL_FORMAT: &str = "partner-url";

/// Past this many problems the rest are summarised: a huge bad document must not make a huge
/// answer.
const MAX_REPORTED: usize = 50;
const MAX_MESSAGE_CHARS: usize = 300;

/// Compiles a template's metadata schema for a partner's URL policy.
pub fn compile_schema(schema: &Value, policy: UrlPolicy) -> anyhow::Result<Validator> {
    jsonschema::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .with_format(PARTNER_URL_FORMAT, move |url: &str| policy.allows(url))
        .build(schema)
        .map_err(|err| anyhow::anyhow!("invalid JSON Schema: {err}"))
}

/// Adds to `problems` why `validator` refuses `document`, each pointing below `base` (the
/// document's own JSON Pointer: `/metadata` in an alert, `""` for a file of its own).
pub fn report_violations(
    validator: &Validator,
    document: &Value,
    base: &str,
    problems: &mut Vec<Problem>,
) {
    for (reported, error) in validator.iter_errors(document).enumerate() {
        if reported == MAX_REPORTED {
            problems.push(Problem::at(
                ErrorCode::SchemaViolation,
                base,
                format!("More than {MAX_REPORTED} schema violations; the rest are not listed."),
            ));
            break;
        }
        let field = format!("{base}{}", error.instance_path());
        let problem = match error.kind() {
            // Point at the property itself, not at the object that lacks or has it.
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                Problem::at(
                    ErrorCode::SchemaViolation,
                    format!("{field}/{}", pointer_token(name)),
                    format!("{name} is required."),
                )
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected.iter().skip(1) {
                    problems.push(Problem::at(
                        ErrorCode::SchemaViolation,
                        format!("{field}/{}", pointer_token(name)),
                        format!("{name} is not a field this template knows."),
                    ));
                }
                let first = unexpected.first().map(String::as_str).unwrap_or_default();
                Problem::at(
                    ErrorCode::SchemaViolation,
                    format!("{field}/{}", pointer_token(first)),
                    format!("{first} is not a field this template knows."),
                )
            }
            ValidationErrorKind::Format { format } if format == PARTNER_URL_FORMAT => Problem::at(
                ErrorCode::UrlNotAllowed,
                field,
                "Links and images must be https URLs on the partner's allowed domains.",
            ),
            _ => Problem::at(
                ErrorCode::SchemaViolation,
                field,
                truncate(error.to_string()),
            ),
        };
        problems.push(problem);
    }
}

/// A message cut to [`MAX_MESSAGE_CHARS`]: a schema error may quote the document.
pub fn truncate(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}
