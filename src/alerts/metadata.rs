//! Checking `metadata` against the partner's template schema, turning each schema error into a
//! problem that points into the request body.

use std::sync::Arc;

use jsonschema::error::ValidationErrorKind;
use serde_json::{Value, value::RawValue};

use crate::{
    error::{ErrorCode, Problem},
    input::json::{self, Unreadable},
    partners::{CheckedMetadata, CompiledTemplate, PARTNER_URL_FORMAT},
};

/// Past this many problems the rest are summarised: a huge bad body must not make a huge answer.
const MAX_REPORTED: usize = 50;
const MAX_MESSAGE_CHARS: usize = 300;

/// The metadata, parsed and in canonical form, if the template accepts it; otherwise its
/// problems are added to `problems`. Text the template accepted before is not checked again.
pub(super) fn check(
    template: &CompiledTemplate,
    metadata: &RawValue,
    problems: &mut Vec<Problem>,
) -> Option<Arc<CheckedMetadata>> {
    let text = metadata.get();
    if let Some(known) = template.valid_metadata.get(text) {
        return Some(known);
    }
    let value: Value = match json::read_strictly(text.as_bytes()) {
        Ok(value) => value,
        Err(Unreadable::Refused(refusal)) => {
            problems.push(refusal.into_problem("/metadata"));
            return None;
        }
        // The body's syntax was checked when it was read; what is left is a document serde_json
        // will not hold, such as a number beyond f64 or nesting past its recursion limit.
        Err(Unreadable::Malformed(err)) => {
            problems.push(Problem::at(
                ErrorCode::InvalidField,
                "/metadata",
                truncate(format!("metadata cannot be read: {err}.")),
            ));
            return None;
        }
    };
    // Most submissions are valid: answering yes or no is much cheaper than collecting errors
    // with their paths, which only a refusal needs.
    if template.validator.is_valid(&value) {
        let checked = Arc::new(CheckedMetadata::new(value));
        template.valid_metadata.remember(text, &checked);
        return Some(checked);
    }
    report(template, &value, problems);
    None
}

fn report(template: &CompiledTemplate, metadata: &Value, problems: &mut Vec<Problem>) {
    for (reported, error) in template.validator.iter_errors(metadata).enumerate() {
        if reported == MAX_REPORTED {
            problems.push(Problem::at(
                ErrorCode::SchemaViolation,
                "/metadata",
                format!("More than {MAX_REPORTED} schema violations; the rest are not listed."),
            ));
            break;
        }
        let field = format!("/metadata{}", error.instance_path());
        let problem = match error.kind() {
            // Point at the property itself, not at the object that lacks or has it.
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                Problem::at(
                    ErrorCode::SchemaViolation,
                    format!("{field}/{}", escape(name)),
                    format!("{name} is required."),
                )
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected.iter().skip(1) {
                    problems.push(Problem::at(
                        ErrorCode::SchemaViolation,
                        format!("{field}/{}", escape(name)),
                        format!("{name} is not a field this template knows."),
                    ));
                }
                let first = unexpected.first().map(String::as_str).unwrap_or_default();
                Problem::at(
                    ErrorCode::SchemaViolation,
                    format!("{field}/{}", escape(first)),
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

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn truncate(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}
