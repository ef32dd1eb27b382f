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

pub use json::{JsonDocument, read_json};
pub use text::{forbidden_char, xml_text};
