//! What maestro accepts as input, decided once for every surface and both backends.
//!
//! PostgreSQL cannot store U+0000 in `TEXT` or `JSONB`, and XML 1.0 cannot carry most control
//! characters; SQLite takes both. So that a request gets the same answer whichever backend holds
//! it, and that what partners receive as XML is always well-formed, one rule is applied where
//! text enters — request bodies, paths and query strings, token claims — rather than by each
//! query: text is what XML 1.0 can carry ([`text`]). JSON bodies are read strictly as well: a
//! member named twice is refused instead of silently keeping one of the values ([`json`]).

pub mod json;
pub mod text;

use std::borrow::Cow;

pub use json::{JsonDocument, read_json};
pub use text::{forbidden_char, xml_text};

/// A member name as one JSON Pointer reference token (RFC 6901: `~` as `~0`, then `/` as `~1`),
/// the one way every problem's pointer is written.
pub fn pointer_token(name: &str) -> Cow<'_, str> {
    match name.contains(['~', '/']) {
        true => Cow::Owned(name.replace('~', "~0").replace('/', "~1")),
        false => Cow::Borrowed(name),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pointer_tokens_escape_tilde_before_slash() {
        assert_eq!(super::pointer_token("a/b~c"), "a~1b~0c");
        assert_eq!(
            super::pointer_token("~1"),
            "~01",
            "not read back as a slash"
        );
        assert_eq!(super::pointer_token("plain"), "plain");
    }
}
