//! Checking `metadata` against the partner's template schema, turning each schema error into a
//! problem that points into the request body (in the words of [`crate::partners::schema`], which
//! a template's `example.json` is checked with too).

use std::sync::Arc;

use serde_json::{Value, value::RawValue};

use crate::{
    error::{ErrorCode, Problem},
    input::json::{self, Unreadable},
    partners::{
        CheckedMetadata, CompiledTemplate,
        schema::{self, truncate},
    },
};

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
    schema::report_violations(&template.validator, &value, "/metadata", problems);
    None
}
