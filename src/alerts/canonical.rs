//! The canonical form of a request body: serde_json's serialisation of the parsed document
//! (object keys in order, no insignificant white space). It is what is stored and hashed, so an
//! identical retry is recognised however its keys were ordered or spaced.

use std::ops::Range;

use serde_json::{Map, Value};

/// A body in canonical form, and where its `metadata` member's value lies in it.
pub struct Canonical {
    pub json: String,
    metadata: Range<usize>,
}

impl Canonical {
    /// Serialises `body` once; the templates' inputs digest reuses the `metadata` part of it
    /// instead of serialising the metadata a second time.
    pub fn of(body: &Map<String, Value>) -> serde_json::Result<Canonical> {
        let mut out = Vec::with_capacity(2048);
        let mut metadata = 0..0;
        out.push(b'{');
        for (index, (key, value)) in body.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, key)?;
            out.push(b':');
            let start = out.len();
            serde_json::to_writer(&mut out, value)?;
            if key == "metadata" {
                metadata = start..out.len();
            }
        }
        out.push(b'}');
        let json = String::from_utf8(out).expect("serde_json writes UTF-8");
        Ok(Canonical { json, metadata })
    }

    /// The canonical JSON of the `metadata` member's value (empty when there is none).
    pub fn metadata(&self) -> &str {
        &self.json[self.metadata.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(json: &str) -> Map<String, Value> {
        match serde_json::from_str(json).unwrap() {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn is_serde_jsons_serialisation_of_the_document() {
        let seed = object(include_str!("../../tests/fixtures/groundspan_post.json"));
        let canonical = Canonical::of(&seed).unwrap();
        assert_eq!(canonical.json, serde_json::to_string(&seed).unwrap());
        assert_eq!(
            canonical.metadata(),
            serde_json::to_string(&seed["metadata"]).unwrap()
        );
    }

    #[test]
    fn key_order_and_spacing_do_not_matter() {
        let one = Canonical::of(&object(r#"{"b": [1, {"y": 2, "x": "é\n"}], "a": null}"#));
        let two = Canonical::of(&object(r#"{"a":null,"b":[1,{"x":"é\n","y":2}]}"#));
        assert_eq!(one.unwrap().json, two.unwrap().json);
    }

    #[test]
    fn a_body_without_metadata_has_an_empty_metadata_part() {
        let canonical = Canonical::of(&object(r#"{"extRef": "x"}"#)).unwrap();
        assert_eq!(canonical.json, r#"{"extRef":"x"}"#);
        assert_eq!(canonical.metadata(), "");
    }
}
