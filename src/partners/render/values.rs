//! An alert and its metadata as template values.

use std::sync::Arc;

use minijinja::{
    Value,
    value::{Enumerator, Object},
};
use time::format_description::well_known::Rfc3339;

use super::AlertFields;

/// `alert` as templates see it; its fields are listed in [`super::environment`] too.
pub(super) fn alert_value(alert: &AlertFields<'_>) -> Value {
    Value::from_pairs([
        ("extRef", Value::from(alert.ext_ref)),
        ("templateId", Value::from(alert.template_id)),
        ("msgType", Value::from(alert.msg_type)),
        ("topic", Value::from(alert.topic)),
        ("title", Value::from(alert.title)),
        ("createdAt", Value::from(alert.created_at)),
        (
            "expiresAt",
            Value::from(alert.expires_at.format(&Rfc3339).unwrap_or_default()),
        ),
    ])
}

/// JSON as template values: objects become [`JsonObject`]s, `null` becomes `none`.
pub(super) fn json_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(f)) => Value::from(f),
            (None, None) => Value::from(n.to_string()),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => items.iter().map(json_value).collect(),
        serde_json::Value::Object(map) => Value::from_object(JsonObject(
            map.iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect(),
        )),
    }
}

/// A JSON object as a template sees it. Partner objects are small (a dozen keys at most), so a
/// list searched by name beats minijinja's general map, which sorts its keys on construction
/// and compares them as values on every lookup — both per alert, on the ingestion path.
#[derive(Debug)]
struct JsonObject(Vec<(String, Value)>);

impl Object for JsonObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        self.0
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self
            .0
            .iter()
            .map(|(name, _)| Value::from(name.as_str()))
            .collect();
        Enumerator::Iter(Box::new(keys.into_iter()))
    }
}
