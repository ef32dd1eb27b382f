//! The one domain error type and the catalogue of error codes.
//!
//! Every surface renders [`Error`] in its own format (the Maestro JSON error schema, the legacy
//! XML `<Error>`, OAuth2's error body at the token endpoint); the domain never knows which. Each
//! code's HTTP status lives in the catalogue (`code.rs`), so that all surfaces agree on it.

use serde_json::{Map, Value};

mod code;

pub use code::ErrorCode;

/// One thing wrong with a request: a code, a sentence for a human, and where it applies.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub code: ErrorCode,
    pub message: String,
    /// Extra facts for the caller; `field` (a JSON Pointer) is set by [`Problem::at`].
    pub details: Map<String, Value>,
}

impl Problem {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Problem {
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// A problem with the field at `pointer` (a JSON Pointer into the request body).
    pub fn at(code: ErrorCode, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Problem::new(code, message).with_detail("field", pointer.into())
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    pub fn field(&self) -> Option<&str> {
        self.details.get("field").and_then(Value::as_str)
    }

    /// The message, and the field it applies to when there is one (for logs and the CLI).
    pub fn describe(&self) -> String {
        match self.field() {
            Some(field) => format!("{} ({field})", self.message),
            None => self.message.clone(),
        }
    }

    /// The problem with its message and text details cut to [`MAX_PROBLEM_TEXT`] characters:
    /// they may echo what the caller sent (a field name, a pointer).
    fn bounded(&self) -> Problem {
        let mut problem = self.clone();
        cut(&mut problem.message);
        for value in problem.details.values_mut() {
            if let Value::String(text) = value {
                cut(text);
            }
        }
        problem
    }
}

/// At most this many problems are listed in one answer.
pub const MAX_LISTED_PROBLEMS: usize = 50;
/// The longest message or detail text of a problem in an answer, in characters.
pub const MAX_PROBLEM_TEXT: usize = 512;

fn cut(text: &mut String) {
    if let Some((at, _)) = text.char_indices().nth(MAX_PROBLEM_TEXT) {
        text.truncate(at);
        text.push('…');
    }
}

/// The domain error. Client-facing problems carry their own codes; anything unexpected is
/// `Internal`, logged once where it is rendered and answered without its internals.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more problems, all reported at once. The first decides the status.
    #[error("{}", .0.iter().map(Problem::describe).collect::<Vec<_>>().join("; "))]
    Rejected(Vec<Problem>),
    /// What the request's path names does not exist for the caller: 404, whatever the code's
    /// own status. A code may name the same fault in a body and in a path: `UNKNOWN_TEMPLATE`
    /// is a 400 where a body names the template, a 404 where the path does.
    #[error("{}", .0.describe())]
    NotFound(Problem),
    #[error("rate limited, retry after {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Rejected(vec![Problem::new(code, message)])
    }

    pub fn at(code: ErrorCode, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Rejected(vec![Problem::at(code, pointer, message)])
    }

    /// 404 with `code` (see [`Error::NotFound`]).
    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::NotFound(Problem::new(code, message))
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidToken, message)
    }

    pub fn timeout() -> Self {
        Error::new(
            ErrorCode::UpstreamTimeout,
            "The database did not answer in time; the request was not applied. Retry later.",
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::ServiceUnavailable, message)
    }

    /// The code that decides the status of the answer.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Rejected(problems) => problems
                .first()
                .map(|p| p.code)
                .unwrap_or(ErrorCode::InternalError),
            Error::NotFound(problem) => problem.code,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// The status of the answer: the catalogue's for the deciding code, except for
    /// [`Error::NotFound`].
    pub fn http_status(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            _ => self.code().http_status(),
        }
    }

    /// The problems a caller may see. Internal errors become one opaque problem. An answer is
    /// bounded whatever the request held: at most [`MAX_LISTED_PROBLEMS`] are listed (a last
    /// `TOO_MANY_ERRORS` says how many more there were), and echoed texts are cut short.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Error::Rejected(problems) => {
                let mut listed: Vec<Problem> = problems
                    .iter()
                    .take(MAX_LISTED_PROBLEMS)
                    .map(Problem::bounded)
                    .collect();
                let omitted = problems.len().saturating_sub(MAX_LISTED_PROBLEMS);
                if omitted > 0 {
                    listed.push(
                        Problem::new(
                            ErrorCode::TooManyErrors,
                            format!(
                                "{omitted} more problems were found and are not listed; \
                                 correct these and send the request again."
                            ),
                        )
                        .with_detail("omitted", omitted),
                    );
                }
                listed
            }
            Error::NotFound(problem) => vec![problem.bounded()],
            Error::RateLimited { retry_after_secs } => vec![
                Problem::new(
                    ErrorCode::RateLimited,
                    format!("Too many requests from this partner; retry in {retry_after_secs} s."),
                )
                .with_detail("retryAfterSeconds", *retry_after_secs),
            ],
            Error::Internal(_) => vec![Problem::new(
                ErrorCode::InternalError,
                "An internal error occurred; it has been logged with this request's correlation id.",
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_named_uniquely_in_screaming_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "{name} appears twice");
            assert!(
                name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{name}"
            );
        }
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = Error::Internal(anyhow::anyhow!("no such table: alerts"));
        let problems = err.problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].code, ErrorCode::InternalError);
        assert!(!problems[0].message.contains("alerts"));
        assert_eq!(err.http_status(), 500);
    }

    #[test]
    fn an_answer_lists_a_bounded_number_of_bounded_problems() {
        let long = "k".repeat(10_000);
        let err = Error::Rejected(
            (0..20_000)
                .map(|i| {
                    Problem::at(
                        ErrorCode::SchemaViolation,
                        format!("/{long}{i}"),
                        long.clone(),
                    )
                })
                .collect(),
        );
        let problems = err.problems();
        assert_eq!(problems.len(), MAX_LISTED_PROBLEMS + 1);
        let last = problems.last().unwrap();
        assert_eq!(last.code, ErrorCode::TooManyErrors);
        assert_eq!(last.details["omitted"], 20_000 - MAX_LISTED_PROBLEMS);
        for problem in &problems[..MAX_LISTED_PROBLEMS] {
            assert_eq!(problem.message.chars().count(), MAX_PROBLEM_TEXT + 1);
            assert!(problem.field().unwrap().ends_with('…'));
        }
        assert_eq!(err.http_status(), 400);
    }

    #[test]
    fn a_missing_resource_is_404_whatever_its_codes_status() {
        let err = Error::not_found(ErrorCode::UnknownTemplate, "No such template.");
        assert_eq!(err.code(), ErrorCode::UnknownTemplate);
        assert_eq!(err.http_status(), 404);
        assert_eq!(ErrorCode::UnknownTemplate.http_status(), 400);
        assert_eq!(err.problems()[0].message, "No such template.");
    }

    #[test]
    fn the_first_problem_decides_the_status() {
        let err = Error::Rejected(vec![
            Problem::at(ErrorCode::MissingField, "/userId", "userId is required"),
            Problem::at(ErrorCode::SchemaViolation, "/metadata", "bad"),
        ]);
        assert_eq!(err.http_status(), 400);
        assert_eq!(err.problems()[0].field(), Some("/userId"));
    }
}
