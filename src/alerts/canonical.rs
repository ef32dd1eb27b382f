//! The canonical form of a request body: serde_json's serialisation of the parsed document
//! (object keys in order, no insignificant white space). It is what is stored and hashed, so an
//! identical retry is recognised however its keys were ordered or spaced.

use std::ops::Range;

use serde_json::{Map, Value};

const METADATA: &str = "metadata";

/// A body in canonical form, and where its `metadata` member's value lies in it.
pub struct Canonical {
    pub json: String,
    metadata: Range<usize>,
}

impl Canonical {
    /// Serialises a body from its other `members` and the canonical JSON of its `metadata`
    /// (made when the metadata was checked), each key in serde_json's order.
    pub fn of(
        members: &Map<String, Value>,
        metadata: Option<&str>,
    ) -> serde_json::Result<Canonical> {
        let mut out = Vec::with_capacity(2048);
        let mut range = 0..0;
        let mut pending = metadata;
        out.push(b'{');
        for (key, value) in members {
            // serde_json's map is ordered by key: metadata goes before the first key after it.
            if key.as_str() > METADATA
                && let Some(json) = pending.take()
            {
                range = push_metadata(&mut out, json);
            }
            separate(&mut out);
            serde_json::to_writer(&mut out, key)?;
            out.push(b':');
            serde_json::to_writer(&mut out, value)?;
        }
        if let Some(json) = pending {
            range = push_metadata(&mut out, json);
        }
        out.push(b'}');
        let json = String::from_utf8(out).expect("serde_json writes UTF-8");
        Ok(Canonical {
            json,
            metadata: range,
        })
    }

    /// Where the `metadata` member's value lies in `json` (empty when there is none).
    pub fn metadata_range(&self) -> Range<usize> {
        self.metadata.clone()
    }

    /// The canonical JSON of the `metadata` member's value (empty when there is none).
    #[cfg(test)]
    pub fn metadata(&self) -> &str {
        &self.json[self.metadata.clone()]
    }
}

/// A comma, unless `out` holds only the opening brace.
fn separate(out: &mut Vec<u8>) {
    if out.len() > 1 {
        out.push(b',');
    }
}

/// Writes the metadata member; returns where its value lies in `out`.
fn push_metadata(out: &mut Vec<u8>, json: &str) -> Range<usize> {
    separate(out);
    out.extend_from_slice(br#""metadata":"#);
    let start = out.len();
    out.extend_from_slice(json.as_bytes());
    start..out.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonical form of a whole document, by the same path the alert service takes.
    fn canonical(json: &str) -> Canonical {
        let mut members = match serde_json::from_str(json).unwrap() {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        };
        let metadata = members
            .remove("metadata")
            .map(|value| serde_json::to_string(&value).unwrap());
        Canonical::of(&members, metadata.as_deref()).unwrap()
    }

    #[test]
    fn is_serde_jsons_serialisation_of_the_document() {
        let json = include_str!("../../tests/fixtures/groundspan_post.json");
        let seed: Value = serde_json::from_str(json).unwrap();
        let canonical = canonical(json);
        assert_eq!(canonical.json, serde_json::to_string(&seed).unwrap());
        assert_eq!(
            canonical.metadata(),
            serde_json::to_string(&seed["metadata"]).unwrap()
        );
    }

    #[test]
    fn metadata_takes_its_place_among_keys_before_and_after_it_or_alone() {
        for json in [
            r#"{"metadata": {"x": 1}}"#,
            r#"{"a": 1, "metadata": {"x": 1}}"#,
            r#"{"metadata": {"x": 1}, "z": 1}"#,
            r#"{"z": [], "metadata": {"x": 1}, "m": true, "metadatb": 2, "metadat": 3}"#,
            r#"{"metadata": []}"#,
        ] {
            let document: Value = serde_json::from_str(json).unwrap();
            let canonical = canonical(json);
            assert_eq!(canonical.json, serde_json::to_string(&document).unwrap());
            assert_eq!(
                canonical.metadata(),
                serde_json::to_string(&document["metadata"]).unwrap()
            );
        }
    }

    #[test]
    fn key_order_and_spacing_do_not_matter() {
        let one = canonical(r#"{"b": [1, {"y": 2, "x": "é\n"}], "a": null}"#);
        let two = canonical(r#"{"a":null,"b":[1,{"x":"é\n","y":2}]}"#);
        assert_eq!(one.json, two.json);
    }

    #[test]
    fn a_body_without_metadata_has_an_empty_metadata_part() {
        let canonical = canonical(r#"{"extRef": "x"}"#);
        assert_eq!(canonical.json, r#"{"extRef":"x"}"#);
        assert_eq!(canonical.metadata(), "");
        assert_eq!(Canonical::of(&Map::new(), None).unwrap().json, "{}");
    }
}
