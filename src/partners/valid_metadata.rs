//! Metadata a template version has accepted, remembered by the exact text a partner sent.
//!
//! A fan-out sends one offer to many travellers: the same metadata in alert after alert. Parsing
//! it, checking it against the schema, serialising it canonically and dropping it again were a
//! fifth of the server's CPU per alert; a repeat now costs a hash of its text and one comparison.
//! The key is the whole text (compared in full on a hit, so no collision can skip a check), and
//! an entry belongs to one compiled template: a new version, or a change of the partner's URL
//! policy, compiles a new template and so starts an empty cache.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Entries kept per template version; past this the cache starts over (a burst repeats one
/// offer back to back, so it refills at once).
const ENTRIES: usize = 32;
/// Longer metadata is checked every time: with [`ENTRIES`], this bounds a template's cache to
/// about 1.5 MB (text, canonical form and parsed value) whatever partners send.
const MAX_TEXT_BYTES: usize = 8 * 1024;

/// Metadata that passed its template's schema.
#[derive(Debug, PartialEq)]
pub struct CheckedMetadata {
    /// The parsed document (the renderer reads it).
    pub value: Value,
    /// Its canonical JSON (what the stored body holds).
    pub canonical: String,
    /// SHA-256 of `canonical`: what the rendering cache's key and a store's shared copy of
    /// the metadata go by, computed once here rather than per alert.
    pub digest: [u8; 32],
}

impl CheckedMetadata {
    pub fn new(value: Value) -> CheckedMetadata {
        let canonical = serde_json::to_string(&value).expect("a Value serialises");
        let digest = Sha256::digest(canonical.as_bytes()).into();
        CheckedMetadata {
            value,
            canonical,
            digest,
        }
    }
}

#[derive(Default)]
pub struct ValidMetadata {
    entries: Mutex<HashMap<Box<str>, Arc<CheckedMetadata>>>,
}

impl ValidMetadata {
    /// What an earlier check of exactly this text found, if it passed and is still kept.
    pub fn get(&self, text: &str) -> Option<Arc<CheckedMetadata>> {
        self.entries
            .lock()
            .expect("not poisoned")
            .get(text)
            .cloned()
    }

    /// Keeps `checked` as the outcome of `text`, unless the text is too long to keep.
    pub fn remember(&self, text: &str, checked: &Arc<CheckedMetadata>) {
        if text.len() > MAX_TEXT_BYTES {
            return;
        }
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.len() >= ENTRIES {
            entries.clear();
        }
        entries.insert(text.into(), Arc::clone(checked));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().expect("not poisoned").len()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn checked(value: Value) -> Arc<CheckedMetadata> {
        Arc::new(CheckedMetadata::new(value))
    }

    #[test]
    fn finds_only_the_exact_text_it_was_given() {
        let cache = ValidMetadata::default();
        let one = checked(json!({"a": 1}));
        cache.remember(r#"{"a": 1}"#, &one);
        assert_eq!(cache.get(r#"{"a": 1}"#), Some(one));
        // The same document spaced otherwise is another text: checked again, not assumed.
        assert_eq!(cache.get(r#"{"a":1}"#), None);
    }

    #[test]
    fn the_canonical_form_is_serde_jsons_serialisation() {
        let metadata = CheckedMetadata::new(json!({"b": [1, "é"], "a": null}));
        assert_eq!(metadata.canonical, r#"{"a":null,"b":[1,"é"]}"#);
        assert_eq!(
            metadata.digest,
            <[u8; 32]>::from(Sha256::digest(r#"{"a":null,"b":[1,"é"]}"#.as_bytes()))
        );
    }

    #[test]
    fn stays_bounded_in_entries_and_in_text_length() {
        let cache = ValidMetadata::default();
        for n in 0..ENTRIES * 3 + 1 {
            cache.remember(&format!("{{\"n\": {n}}}"), &checked(json!({ "n": n })));
            assert!(cache.len() <= ENTRIES);
        }
        let long = format!("{{\"s\": \"{}\"}}", "x".repeat(MAX_TEXT_BYTES));
        cache.remember(&long, &checked(json!({})));
        assert_eq!(cache.get(&long), None);
    }
}
