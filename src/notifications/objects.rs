//! The objects a notification's ObjectURI names: the latest trip or travel profile snapshot a
//! company sent with its events, served back as XML.
//!
//! A snapshot arrives as JSON (`object` of a company event) and is written as XML element for
//! element: an object's keys become child elements, an array repeats its key's element, scalars
//! become text. Keys are checked to be XML names when the event is received.

use quick_xml::{
    Writer,
    events::{BytesDecl, BytesEnd, BytesStart, Event},
};
use serde_json::Value;

use crate::{
    auth::Principal,
    error::{Error, ErrorCode, Problem, Result},
    input::xml_text,
    store::{DynStore, SnapshotKey},
};

/// The namespace of the trip and profile documents (SPEC §6).
pub const NAMESPACE: &str = "http://www.concursolutions.com/api/travel/trip/2010/06";

/// Nesting deeper than this is refused at intake (and cannot reach the writer).
const MAX_DEPTH: usize = 32;

pub struct ObjectService {
    store: DynStore,
}

impl ObjectService {
    pub fn new(store: DynStore) -> Self {
        ObjectService { store }
    }

    /// `GET /api/travel/trip/v1.1/{tripId}`.
    pub async fn trip(&self, caller: &Principal, trip_id: &str) -> Result<String> {
        self.document(caller, SnapshotKey::Trip(trip_id.to_owned()), "Itinerary")
            .await
    }

    /// `GET /api/travelprofile/v2.0/profile?userid_type=login&userid_value=…`.
    pub async fn profile(
        &self,
        caller: &Principal,
        userid_type: Option<&str>,
        login: Option<&str>,
    ) -> Result<String> {
        let mut problems = Vec::new();
        if userid_type.is_some_and(|t| !t.eq_ignore_ascii_case("login")) {
            problems.push(Problem::at(
                ErrorCode::InvalidField,
                "userid_type",
                "userid_type must be login.",
            ));
        }
        let login = login.filter(|l| !l.trim().is_empty());
        if login.is_none() {
            problems.push(Problem::at(
                ErrorCode::MissingField,
                "userid_value",
                "userid_value (the user's login) is required.",
            ));
        }
        if !problems.is_empty() {
            return Err(Error::Rejected(problems));
        }
        let key = SnapshotKey::Profile {
            user_login: login.expect("checked").to_owned(),
        };
        self.document(caller, key, "ProfileResponse").await
    }

    async fn document(&self, caller: &Principal, key: SnapshotKey, root: &str) -> Result<String> {
        let company = caller.company_id.as_deref().ok_or_else(|| {
            Error::new(
                ErrorCode::InsufficientScope,
                "A company's trips and profiles are read with a token of that company.",
            )
        })?;
        let snapshot = self.store.snapshot(company, &key).await?.ok_or_else(|| {
            Error::new(
                ErrorCode::ObjectNotFound,
                "No such trip or profile for this company.",
            )
        })?;
        let value: Value = serde_json::from_str(&snapshot)
            .map_err(|err| Error::Internal(anyhow::anyhow!("stored snapshot: {err}")))?;
        Ok(to_xml(root, &value))
    }
}

/// Problems with a snapshot's shape, as JSON Pointers under `pointer`: every key must be an
/// XML element name, and nesting is bounded.
pub fn check_snapshot(value: &Value, pointer: &str, problems: &mut Vec<Problem>) {
    check(value, pointer, 0, problems);
}

fn check(value: &Value, pointer: &str, depth: usize, problems: &mut Vec<Problem>) {
    if depth > MAX_DEPTH {
        problems.push(Problem::at(
            ErrorCode::InvalidField,
            pointer,
            format!("A snapshot may nest at most {MAX_DEPTH} levels."),
        ));
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let at = format!("{pointer}/{}", crate::input::pointer_token(key));
                if !is_xml_name(key) {
                    problems.push(Problem::at(
                        ErrorCode::InvalidField,
                        at.clone(),
                        "A snapshot key must be an XML element name (a letter or _, then \
                         letters, digits, _, - or .).",
                    ));
                }
                check(child, &at, depth + 1, problems);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                if item.is_array() {
                    problems.push(Problem::at(
                        ErrorCode::InvalidField,
                        format!("{pointer}/{index}"),
                        "A snapshot array may not directly hold arrays.",
                    ));
                }
                check(item, &format!("{pointer}/{index}"), depth + 1, problems);
            }
        }
        _ => {}
    }
}

fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    starts_well
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.to_ascii_lowercase().starts_with("xml")
}

/// The snapshot as an XML document under `root`, in [`NAMESPACE`].
pub fn to_xml(root: &str, value: &Value) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    let write = |w: &mut Writer<Vec<u8>>| -> std::io::Result<()> {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
        let start = BytesStart::new(root).with_attributes([("xmlns", NAMESPACE)]);
        w.write_event(Event::Start(start))?;
        if let Value::Object(map) = value {
            for (key, child) in map {
                element(w, key, child)?;
            }
        }
        w.write_event(Event::End(BytesEnd::new(root)))
    };
    write(&mut writer).expect("writing to memory cannot fail");
    String::from_utf8(writer.into_inner()).expect("quick-xml writes UTF-8")
}

fn element(w: &mut Writer<Vec<u8>>, name: &str, value: &Value) -> std::io::Result<()> {
    match value {
        Value::Array(items) => {
            for item in items {
                element(w, name, item)?;
            }
        }
        Value::Object(map) => {
            w.write_event(Event::Start(BytesStart::new(name)))?;
            for (key, child) in map {
                element(w, key, child)?;
            }
            w.write_event(Event::End(BytesEnd::new(name)))?;
        }
        Value::Null => w.write_event(Event::Empty(BytesStart::new(name)))?,
        Value::String(text) => {
            w.create_element(name).write_text_content(xml_text(text))?;
        }
        scalar => {
            w.create_element(name)
                .write_text_content(xml_text(&scalar.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_snapshot_becomes_namespaced_xml() {
        let trip = json!({
            "TripName": "Paris <&> back",
            "StartDateLocal": "2026-12-01T09:00:00",
            "Segments": {"Air": [{"FlightNumber": 12}, {"FlightNumber": 34}]},
            "Cancelled": false,
            "Comment": null
        });
        assert_eq!(
            to_xml("Itinerary", &trip),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
             <Itinerary xmlns=\"http://www.concursolutions.com/api/travel/trip/2010/06\">\n  \
               <Cancelled>false</Cancelled>\n  \
               <Comment/>\n  \
               <Segments>\n    \
                 <Air>\n      <FlightNumber>12</FlightNumber>\n    </Air>\n    \
                 <Air>\n      <FlightNumber>34</FlightNumber>\n    </Air>\n  \
               </Segments>\n  \
               <StartDateLocal>2026-12-01T09:00:00</StartDateLocal>\n  \
               <TripName>Paris &lt;&amp;&gt; back</TripName>\n\
             </Itinerary>"
        );
    }

    #[test]
    fn keys_that_are_not_xml_names_are_reported_where_they_are() {
        let mut problems = Vec::new();
        check_snapshot(
            &json!({"ok": {"1bad": 1, "a b": [{"<x>": 2}]}, "xmlns": "x"}),
            "/object",
            &mut problems,
        );
        let fields: Vec<_> = problems.iter().map(|p| p.field().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "/object/ok/1bad",
                "/object/ok/a b",
                "/object/ok/a b/0/<x>",
                "/object/xmlns"
            ]
        );
    }
}
