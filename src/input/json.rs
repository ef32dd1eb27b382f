//! Reading JSON documents strictly, in the same pass that parses them: a member named twice in
//! one object is refused (serde_json's `Value` would keep the last silently, so two readers of
//! one document could disagree), and so is any key or string holding a character maestro does
//! not accept ([`super::text`]). A refusal names the place with a JSON Pointer.
//!
//! The reader builds the document itself (a `DeserializeSeed` over serde_json's parser), so the
//! checks cost no second pass; the pointer is only assembled on the way out of a refusal.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value, map::Entry};

use super::text;
use crate::error::{Error, ErrorCode, Problem};

/// A document type that can be read strictly.
pub trait JsonDocument: Sized {
    /// Reads `Self`, recording in `refusal` why it stopped when a check fails.
    fn deserialize_strictly<'de, D: Deserializer<'de>>(
        deserializer: D,
        refusal: &mut Option<Refusal>,
    ) -> Result<Self, D::Error>;
}

impl JsonDocument for Value {
    fn deserialize_strictly<'de, D: Deserializer<'de>>(
        deserializer: D,
        refusal: &mut Option<Refusal>,
    ) -> Result<Self, D::Error> {
        StrictValue { refusal }.deserialize(deserializer)
    }
}

/// Why a document could not be read.
#[derive(Debug)]
pub enum Unreadable {
    /// Well-formed JSON that breaks one of maestro's rules, at `pointer` (relative to the
    /// document read).
    Refused(Refusal),
    /// Not JSON (or JSON serde_json cannot hold, such as a number beyond f64).
    Malformed(serde_json::Error),
}

/// A rule a document broke, and where.
#[derive(Debug)]
pub struct Refusal {
    kind: RefusalKind,
    /// The path from the refused place outwards: the innermost segment first.
    segments: Vec<String>,
}

#[derive(Debug)]
enum RefusalKind {
    DuplicateMember,
    ForbiddenCharacter(char),
}

impl Refusal {
    fn new(kind: RefusalKind) -> Refusal {
        Refusal {
            kind,
            segments: Vec::new(),
        }
    }

    /// The JSON Pointer of the refused place, below `base` (a pointer itself, `""` for the root).
    pub fn pointer(&self, base: &str) -> String {
        let mut pointer = base.to_owned();
        for segment in self.segments.iter().rev() {
            pointer.push('/');
            pointer.push_str(&super::pointer_token(segment));
        }
        pointer
    }

    /// The refusal as a problem of a request whose document sits at `base`.
    pub fn into_problem(self, base: &str) -> Problem {
        let pointer = self.pointer(base);
        match self.kind {
            RefusalKind::DuplicateMember => Problem::at(
                ErrorCode::InvalidJson,
                pointer,
                "This member appears more than once in its object; each name may appear once.",
            ),
            RefusalKind::ForbiddenCharacter(c) => {
                let what = if pointer.is_empty() {
                    "The document"
                } else {
                    "This text"
                };
                Problem::at(ErrorCode::InvalidField, pointer, text::refusal(what, c))
            }
        }
    }
}

/// Reads a document strictly; the caller decides how to report what stopped it.
pub fn read_strictly<T: JsonDocument>(bytes: &[u8]) -> Result<T, Unreadable> {
    let mut refusal = None;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let read = T::deserialize_strictly(&mut deserializer, &mut refusal)
        .and_then(|document| deserializer.end().map(|()| document));
    match (read, refusal) {
        (Ok(document), _) => Ok(document),
        (Err(_), Some(refusal)) => Err(Unreadable::Refused(refusal)),
        (Err(err), None) => Err(Unreadable::Malformed(err)),
    }
}

/// Reads a request body: malformed JSON is `INVALID_JSON`, a broken rule names its pointer.
pub fn read_json<T: JsonDocument>(bytes: &[u8]) -> Result<T, Error> {
    read_strictly(bytes).map_err(|unreadable| match unreadable {
        Unreadable::Refused(refusal) => Error::Rejected(vec![refusal.into_problem("")]),
        Unreadable::Malformed(err) => Error::new(
            ErrorCode::InvalidJson,
            format!(
                "The body is not valid JSON: {} at line {}, column {}.",
                match err.classify() {
                    serde_json::error::Category::Eof => "unexpected end of input",
                    serde_json::error::Category::Data => "a value JSON numbers cannot hold",
                    _ => "syntax error",
                },
                err.line(),
                err.column()
            ),
        ),
    })
}

/// Records `kind` and returns the error that stops the parser.
fn refuse<E: de::Error>(refusal: &mut Option<Refusal>, kind: RefusalKind) -> E {
    *refusal = Some(Refusal::new(kind));
    E::custom("refused by maestro's input rules")
}

/// Adds `segment` to the path of a refusal found below it, on the way out.
pub fn locate(refusal: &mut Option<Refusal>, segment: impl FnOnce() -> String) {
    if let Some(refusal) = refusal {
        refusal.segments.push(segment());
    }
}

/// Checks a string; a forbidden character is refused.
pub fn check_text<E: de::Error>(text: &str, refusal: &mut Option<Refusal>) -> Result<(), E> {
    match text::forbidden_char(text) {
        None => Ok(()),
        Some(c) => Err(refuse(refusal, RefusalKind::ForbiddenCharacter(c))),
    }
}

/// Inserts a member unless its name was already used in this object.
pub fn insert_member<E: de::Error>(
    members: &mut Map<String, Value>,
    key: String,
    value: Value,
    refusal: &mut Option<Refusal>,
) -> Result<(), E> {
    match members.entry(key) {
        Entry::Vacant(vacant) => {
            vacant.insert(value);
            Ok(())
        }
        Entry::Occupied(occupied) => Err(duplicate(refusal, occupied.key().clone())),
    }
}

/// Refuses a member named `key` a second time in its object.
pub fn duplicate<E: de::Error>(refusal: &mut Option<Refusal>, key: String) -> E {
    let err = refuse(refusal, RefusalKind::DuplicateMember);
    locate(refusal, || key);
    err
}

/// A member name, checked.
pub struct StrictKey<'a> {
    pub refusal: &'a mut Option<Refusal>,
}

impl<'de> DeserializeSeed<'de> for StrictKey<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_string(self)
    }
}

impl Visitor<'_> for StrictKey<'_> {
    type Value = String;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<String, E> {
        self.visit_string(key.to_owned())
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<String, E> {
        if let Err(err) = check_text::<E>(&key, self.refusal) {
            locate(self.refusal, || key);
            return Err(err);
        }
        Ok(key)
    }
}

/// Any JSON value, read strictly into a `Value`.
pub struct StrictValue<'a> {
    pub refusal: &'a mut Option<Refusal>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        // serde_json's parser never yields a non-finite number; `Value` maps one to null too.
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        check_text(value, self.refusal)?;
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        check_text(&value, self.refusal)?;
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        loop {
            let refusal = &mut *self.refusal;
            match seq.next_element_seed(StrictValue { refusal }) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(err) => {
                    locate(self.refusal, || items.len().to_string());
                    return Err(err);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key_seed(StrictKey {
            refusal: self.refusal,
        })? {
            match map.next_value_seed(StrictValue {
                refusal: self.refusal,
            }) {
                Ok(value) => insert_member(&mut members, key, value, self.refusal)?,
                Err(err) => {
                    locate(self.refusal, || key);
                    return Err(err);
                }
            }
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(json: &str) -> Problem {
        match read_json::<Value>(json.as_bytes()) {
            Err(Error::Rejected(mut problems)) if problems.len() == 1 => problems.remove(0),
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn reads_what_serde_json_reads() {
        let json = include_str!("../../tests/fixtures/groundspan_post.json");
        let strict: Value = read_json(json.as_bytes()).unwrap();
        assert_eq!(strict, serde_json::from_str::<Value>(json).unwrap());
        let scalars = r#"[1, -2, 1.5, 1e300, true, null, "a\tb\u00e9\ud83d\ude00", {}, []]"#;
        assert_eq!(
            read_json::<Value>(scalars.as_bytes()).unwrap(),
            serde_json::from_str::<Value>(scalars).unwrap()
        );
    }

    #[test]
    fn a_member_named_twice_is_refused_where_it_repeats() {
        let problem = refused(r#"{"extRef": "a", "userId": "u", "extRef": "b"}"#);
        assert_eq!(problem.code, ErrorCode::InvalidJson);
        assert_eq!(problem.field(), Some("/extRef"));
        let problem = refused(r#"{"metadata": {"packages": [{"a/b": 1, "a/b": 2}]}}"#);
        assert_eq!(problem.field(), Some("/metadata/packages/0/a~1b"));
        // The same name in different objects is fine.
        read_json::<Value>(br#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#).unwrap();
    }

    #[test]
    fn forbidden_characters_are_refused_in_strings_and_names() {
        let problem = refused(r#"{"userId": "u\u0000"}"#);
        assert_eq!(problem.code, ErrorCode::InvalidField);
        assert_eq!(problem.field(), Some("/userId"));
        assert!(problem.message.contains("U+0000"), "{}", problem.message);
        let problem = refused(r#"{"object": {"Trip": ["ok", "bell\u0007"]}}"#);
        assert_eq!(problem.field(), Some("/object/Trip/1"));
        let problem = refused(r#"{"metadata": {"k\u001f": 1}}"#);
        assert_eq!(problem.field(), Some("/metadata/k\u{1f}"));
        let problem = refused("\"\u{ffff}\"");
        assert_eq!(problem.field(), Some(""));
    }

    #[test]
    fn malformed_documents_are_invalid_json() {
        for json in [
            r#"{"a": }"#,
            r#"{"a": 1"#,
            "[1, 2",
            r#"{"x": 1} trailing"#,
            "1e400",
        ] {
            let err = read_json::<Value>(json.as_bytes()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidJson, "{json}");
        }
        assert!(matches!(
            read_strictly::<Value>(br#"{"a": 1e400}"#),
            Err(Unreadable::Malformed(_))
        ));
    }

    #[test]
    fn the_pointer_is_placed_under_the_documents_own() {
        let Err(Unreadable::Refused(refusal)) = read_strictly::<Value>(br#"{"a~": "\u0001"}"#)
        else {
            panic!("refused")
        };
        assert_eq!(refusal.pointer("/metadata"), "/metadata/a~0");
        assert_eq!(
            json!(refusal.into_problem("/metadata").field()),
            "/metadata/a~0"
        );
    }
}
