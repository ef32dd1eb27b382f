//! An alert submission as read off the wire: every member parsed, except `metadata`, which is
//! kept as the text the partner sent. A fan-out repeats one offer's metadata in every alert, so
//! the template checks that text once and remembers the result (see
//! [`crate::partners::ValidMetadata`]) instead of parsing, validating, serialising and dropping
//! the same document per alert.

use std::fmt;

use serde::{
    Deserializer,
    de::{IgnoredAny, MapAccess, SeqAccess, Visitor},
};
use serde_json::{Map, Value, value::RawValue};

use crate::input::json::{self, JsonDocument, Refusal, StrictKey, StrictValue, insert_member};

const METADATA: &str = "metadata";

/// A JSON document sent as an alert (the default: one that is not an object).
#[derive(Debug, Default)]
pub struct AlertBody {
    /// Every member but `metadata`; `None` when the document is not an object.
    members: Option<Map<String, Value>>,
    /// The `metadata` member's value, exactly as sent (syntax already checked).
    metadata: Option<Box<RawValue>>,
}

impl AlertBody {
    /// The document's members other than `metadata`, if it is an object.
    pub fn members(&self) -> Option<&Map<String, Value>> {
        self.members.as_ref()
    }

    /// A top-level member's value when it is a string.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.members.as_ref()?.get(key)?.as_str()
    }

    /// The `metadata` member as sent, if there is one.
    pub fn metadata(&self) -> Option<&RawValue> {
        self.metadata.as_deref()
    }

    /// Whether the `metadata` member is a JSON object (the only shape a template accepts).
    pub fn metadata_is_object(&self) -> bool {
        self.metadata
            .as_deref()
            .is_some_and(|raw| raw.get().trim_start().starts_with('{'))
    }

    /// The body of a parsed document, as if it had been read off the wire.
    pub fn from_value(value: Value) -> AlertBody {
        match value {
            Value::Object(mut members) => {
                let metadata = members.remove(METADATA).map(|metadata| {
                    serde_json::value::to_raw_value(&metadata).expect("a Value serialises")
                });
                AlertBody {
                    members: Some(members),
                    metadata,
                }
            }
            _ => AlertBody::default(),
        }
    }
}

impl JsonDocument for AlertBody {
    fn deserialize_strictly<'de, D: Deserializer<'de>>(
        deserializer: D,
        refusal: &mut Option<Refusal>,
    ) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BodyVisitor { refusal })
    }
}

/// Reads an object member by member, strictly (see [`crate::input::json`]); the metadata's own
/// text is checked when its template reads it. Any other document is accepted as "not an
/// object", so that the request can be refused with a problem naming that rather than a syntax
/// error.
struct BodyVisitor<'a> {
    refusal: &'a mut Option<Refusal>,
}

impl BodyVisitor<'_> {
    fn not_an_object<E>() -> Result<AlertBody, E> {
        Ok(AlertBody::default())
    }
}

impl<'de> Visitor<'de> for BodyVisitor<'_> {
    type Value = AlertBody;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AlertBody, A::Error> {
        let mut members = Map::new();
        let mut metadata = None;
        while let Some(key) = map.next_key_seed(StrictKey {
            refusal: self.refusal,
        })? {
            if key == METADATA {
                let value = map.next_value::<Box<RawValue>>()?;
                if metadata.replace(value).is_some() {
                    return Err(json::duplicate(self.refusal, key));
                }
                continue;
            }
            match map.next_value_seed(StrictValue {
                refusal: self.refusal,
            }) {
                Ok(value) => insert_member(&mut members, key, value, self.refusal)?,
                Err(err) => {
                    json::locate(self.refusal, || key);
                    return Err(err);
                }
            }
        }
        Ok(AlertBody {
            members: Some(members),
            metadata,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AlertBody, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Self::not_an_object()
    }

    fn visit_bool<E>(self, _: bool) -> Result<AlertBody, E> {
        Self::not_an_object()
    }

    fn visit_i64<E>(self, _: i64) -> Result<AlertBody, E> {
        Self::not_an_object()
    }

    fn visit_u64<E>(self, _: u64) -> Result<AlertBody, E> {
        Self::not_an_object()
    }

    fn visit_f64<E>(self, _: f64) -> Result<AlertBody, E> {
        Self::not_an_object()
    }

    fn visit_str<E>(self, _: &str) -> Result<AlertBody, E> {
        Self::not_an_object()
    }

    fn visit_unit<E>(self) -> Result<AlertBody, E> {
        Self::not_an_object()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::{ErrorCode, input::read_json};

    fn read(json: &str) -> AlertBody {
        read_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn keeps_the_metadata_text_as_sent_and_parses_the_rest() {
        let body = read(r#"{"extRef": "r1", "metadata": {"b": 1,  "a": [true]}, "n": 2}"#);
        assert_eq!(body.metadata().unwrap().get(), r#"{"b": 1,  "a": [true]}"#);
        assert!(body.metadata_is_object());
        assert_eq!(body.text("extRef"), Some("r1"));
        let members = body.members().unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members["n"], 2);
        assert!(!members.contains_key("metadata"));
    }

    #[test]
    fn metadata_of_another_shape_is_not_an_object() {
        for metadata in ["[]", "null", "\"{\"", "7"] {
            let body = read(&format!(r#"{{"metadata": {metadata}}}"#));
            assert!(!body.metadata_is_object(), "{metadata}");
            assert!(body.members().is_some());
        }
        assert!(read("{}").metadata().is_none());
    }

    #[test]
    fn a_repeated_member_is_refused_metadata_included() {
        for (json, field) in [
            (r#"{"x": 1, "metadata": {}, "x": 2}"#, "/x"),
            (
                r#"{"metadata": {"a": 1}, "metadata": {"a": 2}}"#,
                "/metadata",
            ),
            (r#"{"title": {"a": 1, "a": 1}}"#, "/title/a"),
        ] {
            let err = read_json::<AlertBody>(json.as_bytes()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidJson, "{json}");
            assert_eq!(err.problems()[0].field(), Some(field), "{json}");
        }
    }

    #[test]
    fn forbidden_characters_in_members_are_refused_with_their_pointer() {
        let err = read_json::<AlertBody>(br#"{"extRef": "a\u0000"}"#).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidField);
        assert_eq!(err.problems()[0].field(), Some("/extRef"));
    }

    #[test]
    fn other_documents_are_read_as_not_an_object() {
        for json in [
            "[1, {\"a\": [2]}]",
            "true",
            "-1",
            "1",
            "1.5",
            "\"text\"",
            "null",
        ] {
            let body = read(json);
            assert!(body.members().is_none(), "{json}");
            assert!(body.metadata().is_none());
        }
    }

    #[test]
    fn bad_syntax_anywhere_is_still_an_error() {
        for json in [
            r#"{"metadata": {"a": }}"#,
            r#"{"metadata": {"a": 1}"#,
            r#"[1, 2"#,
            r#"{"x": 1} trailing"#,
        ] {
            let err = read_json::<AlertBody>(json.as_bytes()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidJson, "{json}");
        }
    }

    #[test]
    fn from_value_matches_reading_the_same_document() {
        let json = include_str!("../../tests/fixtures/groundspan_post.json");
        let read = read(json);
        let built = AlertBody::from_value(serde_json::from_str(json).unwrap());
        assert_eq!(read.members(), built.members());
        let metadata = |body: &AlertBody| -> Value {
            serde_json::from_str(body.metadata().unwrap().get()).unwrap()
        };
        assert_eq!(metadata(&read), metadata(&built));
    }
}
