//! Parse, don't validate: turns a request body into an [`AlertRequest`] or the full list of what
//! is wrong with it, each problem pointing at its field.

use serde_json::{Map, Value};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::AlertBody;
use crate::error::{ErrorCode, Problem};

const FIELDS: [&str; 11] = [
    "extRef",
    "userId",
    "companyId",
    "createdAt",
    "metadata",
    "templateId",
    "msgType",
    "expiresAt",
    "topic",
    "title",
    "applicationId",
];

/// An alert submission whose common fields are all present and well-formed. `metadata` is
/// checked later, against the partner's template.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRequest {
    pub ext_ref: String,
    pub user_id: String,
    pub company_id: Option<String>,
    pub created_at: String,
    pub created_at_time: OffsetDateTime,
    pub template_id: String,
    pub msg_type: String,
    pub expires_at: OffsetDateTime,
    pub topic: Option<String>,
    pub title: Option<String>,
    pub application_id: Option<String>,
}

impl AlertRequest {
    /// Reads the common fields of `body`; every problem found is reported, not only the first.
    /// `now` decides whether `expiresAt` is in the past.
    pub fn parse(body: &AlertBody, now: OffsetDateTime) -> Result<AlertRequest, Vec<Problem>> {
        let Some(object) = body.members() else {
            return Err(vec![Problem::at(
                ErrorCode::InvalidJson,
                "",
                "The request body must be a JSON object.",
            )]);
        };
        let mut fields = Fields {
            object,
            problems: Vec::new(),
        };
        for key in object.keys() {
            if !FIELDS.contains(&key.as_str()) {
                fields.problems.push(Problem::at(
                    ErrorCode::InvalidField,
                    pointer(key),
                    format!("Unknown field {key:?}."),
                ));
            }
        }
        let ext_ref = fields.text("extRef", Need::Required, 1, 255);
        let user_id = fields.text("userId", Need::Required, 1, 255);
        let company_id = fields.text("companyId", Need::Optional, 1, 255);
        let template_id = fields.text("templateId", Need::Required, 1, 128);
        let msg_type = fields.text("msgType", Need::Required, 0, 64);
        let topic = fields.text("topic", Need::Optional, 0, 255);
        let title = fields.text("title", Need::Optional, 0, 500);
        let application_id = fields.text("applicationId", Need::Optional, 1, 128);
        let created_at = fields.timestamp("createdAt");
        let expires_at = fields.timestamp("expiresAt");
        match body.metadata() {
            Some(_) if body.metadata_is_object() => {}
            None => fields.missing("metadata"),
            Some(_) => fields.invalid("metadata", "metadata must be a JSON object."),
        }
        if let Some((_, expires)) = &expires_at {
            if *expires <= now {
                fields.problems.push(Problem::at(
                    ErrorCode::ExpiresInPast,
                    "/expiresAt",
                    "expiresAt must be in the future.",
                ));
            } else if let Some((_, created)) = &created_at
                && expires <= created
            {
                fields.invalid("expiresAt", "expiresAt must be later than createdAt.");
            }
        }
        if !fields.problems.is_empty() {
            return Err(fields.problems);
        }
        let (created_at, created_at_time) = created_at.expect("checked above");
        Ok(AlertRequest {
            ext_ref: ext_ref.expect("checked above"),
            user_id: user_id.expect("checked above"),
            company_id,
            created_at,
            created_at_time,
            template_id: template_id.expect("checked above"),
            msg_type: msg_type.expect("checked above"),
            expires_at: expires_at.expect("checked above").1,
            topic,
            title,
            application_id,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    /// Absent or `null` means "not given".
    Optional,
}

struct Fields<'a> {
    object: &'a Map<String, Value>,
    problems: Vec<Problem>,
}

impl Fields<'_> {
    fn missing(&mut self, key: &str) {
        self.problems.push(Problem::at(
            ErrorCode::MissingField,
            pointer(key),
            format!("{key} is required."),
        ));
    }

    fn invalid(&mut self, key: &str, message: impl Into<String>) {
        self.problems
            .push(Problem::at(ErrorCode::InvalidField, pointer(key), message));
    }

    fn text(&mut self, key: &str, need: Need, min: usize, max: usize) -> Option<String> {
        match self.object.get(key) {
            None | Some(Value::Null) if need == Need::Optional => None,
            None => {
                self.missing(key);
                None
            }
            Some(Value::String(text)) => {
                let length = text.chars().count();
                if length < min {
                    self.invalid(key, format!("{key} must not be empty."));
                    None
                } else if length > max {
                    self.invalid(key, format!("{key} must be at most {max} characters."));
                    None
                } else {
                    Some(text.clone())
                }
            }
            Some(_) => {
                self.invalid(key, format!("{key} must be a string."));
                None
            }
        }
    }

    fn timestamp(&mut self, key: &str) -> Option<(String, OffsetDateTime)> {
        let text = self.text(key, Need::Required, 1, 64)?;
        match OffsetDateTime::parse(&text, &Rfc3339) {
            Ok(at) => Some((text, at)),
            Err(_) => {
                self.invalid(
                    key,
                    format!("{key} must be an RFC 3339 date-time such as 2025-08-19T10:00:00Z."),
                );
                None
            }
        }
    }
}

/// The JSON Pointer of a top-level field (RFC 6901 escaping).
fn pointer(key: &str) -> String {
    format!("/{}", crate::input::pointer_token(key))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2025-08-20 00:00 UTC);

    fn parse(body: Value) -> Result<AlertRequest, Vec<Problem>> {
        AlertRequest::parse(&AlertBody::from_value(body), NOW)
    }

    fn valid() -> Value {
        json!({
            "extRef": "r1", "userId": "u1", "createdAt": "2025-08-19T10:00:00Z",
            "metadata": {}, "templateId": "T", "msgType": "", "expiresAt": "2025-12-31T23:59:59Z"
        })
    }

    #[test]
    fn accepts_the_required_fields() {
        let request = parse(valid()).unwrap();
        assert_eq!(request.ext_ref, "r1");
        assert_eq!(request.msg_type, "");
        assert_eq!(request.company_id, None);
    }

    #[test]
    fn reports_every_missing_field_at_once() {
        let problems = parse(json!({})).unwrap_err();
        let mut fields: Vec<_> = problems.iter().map(|p| p.field().unwrap()).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "/createdAt",
                "/expiresAt",
                "/extRef",
                "/metadata",
                "/msgType",
                "/templateId",
                "/userId"
            ]
        );
        assert!(problems.iter().all(|p| p.code == ErrorCode::MissingField));
    }

    #[test]
    fn reports_wrong_types_and_formats() {
        let mut body = valid();
        body["userId"] = json!(7);
        body["createdAt"] = json!("yesterday");
        body["metadata"] = json!([]);
        body["extRef"] = json!("");
        let problems = parse(body.clone()).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().all(|p| p.code == ErrorCode::InvalidField));
    }

    #[test]
    fn expiry_must_be_in_the_future_and_after_creation() {
        let mut body = valid();
        body["expiresAt"] = json!("2025-08-19T23:59:59Z");
        let problems = parse(body.clone()).unwrap_err();
        assert_eq!(problems[0].code, ErrorCode::ExpiresInPast);

        body["expiresAt"] = json!("2025-09-01T00:00:00Z");
        body["createdAt"] = json!("2025-09-02T00:00:00Z");
        let problems = parse(body.clone()).unwrap_err();
        assert_eq!(problems[0].code, ErrorCode::InvalidField);
        assert_eq!(problems[0].field(), Some("/expiresAt"));
    }

    #[test]
    fn the_boundary_instant_counts_as_expired() {
        let mut body = valid();
        body["createdAt"] = json!("2025-08-19T00:00:00Z");
        body["expiresAt"] = json!("2025-08-20T00:00:00Z");
        assert_eq!(
            parse(body.clone()).unwrap_err()[0].code,
            ErrorCode::ExpiresInPast
        );
    }

    #[test]
    fn a_document_other_than_an_object_is_refused_as_such() {
        let body: AlertBody = crate::input::read_json(b"[1]").unwrap();
        let problems = AlertRequest::parse(&body, NOW).unwrap_err();
        assert_eq!(problems[0].code, ErrorCode::InvalidJson);
        assert_eq!(
            problems[0].message,
            "The request body must be a JSON object."
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let mut body = valid();
        body["expires_at"] = json!("x");
        let problems = parse(body.clone()).unwrap_err();
        assert_eq!(problems[0].field(), Some("/expires_at"));
    }
}
