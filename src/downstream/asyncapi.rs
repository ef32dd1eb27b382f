//! `GET /asyncapi.json`: the AsyncAPI 3.0 document of what maestro publishes to NATS — a
//! channel per alert event type and one for company events, each message a CloudEvent whose
//! `data` is described. Built from the same names the publisher uses (the subject prefix, the
//! stream), so the two cannot drift apart; served whether or not NATS is configured, since it
//! describes the contract.

use serde_json::{Value, json};

use super::{INBOX_ONLY, Naming, NatsServers, PublisherConfig};
use crate::store::{EVENT_ALERT_CREATED, EVENT_ALERT_EXPIRED, EVENT_ALERT_UPDATED};

/// The alert event types published, and when each is sent. `alert.withdrawn` is the SPEC's
/// withdrawal (§4.1); any other `alert.*` type but the user's marks goes out the same way.
const ALERT_EVENTS: [(&str, &str, &str); 4] = [
    (
        EVENT_ALERT_CREATED,
        "alertCreated",
        "An alert was accepted.",
    ),
    (
        EVENT_ALERT_UPDATED,
        "alertUpdated",
        "An alert was updated: a new revision.",
    ),
    (
        EVENT_ALERT_EXPIRED,
        "alertExpired",
        "An alert reached its expiry; `time` is the expiry.",
    ),
    (
        "alert.withdrawn",
        "alertWithdrawn",
        "The partner withdrew an alert.",
    ),
];

/// The document a server with these settings serves.
pub fn for_settings(settings: &crate::Settings) -> Value {
    match PublisherConfig::from_settings(settings) {
        Ok(Some(config)) => document(&config.naming, &config.stream, Some(&config.servers)),
        // Not configured (a bad URL has stopped start-up already): the channels as they would be.
        _ => document(
            &Naming {
                prefix: settings.nats.subject_prefix.clone(),
                source: settings.public_url.clone(),
            },
            &settings.nats.stream,
            None,
        ),
    }
}

/// The document, for the configured subject prefix and stream (and servers, when configured:
/// their hosts only, never credentials).
pub fn document(naming: &Naming, stream: &str, servers: Option<&NatsServers>) -> Value {
    let prefix = &naming.prefix;
    let mut channels = serde_json::Map::new();
    let mut operations = serde_json::Map::new();
    let mut messages = serde_json::Map::new();
    for (event_type, name, summary) in ALERT_EVENTS {
        channels.insert(
            name.to_owned(),
            json!({
                "address": format!("{prefix}.alerts.{{partner}}.{event_type}"),
                "title": event_type,
                "summary": summary,
                "parameters": {"partner": {"description": "The partner's id (its application)."}},
                "messages": {name: {"$ref": format!("#/components/messages/{name}")}}
            }),
        );
        operations.insert(format!("receive{}", upper_first(name)), receive(name, name));
        messages.insert(
            name.to_owned(),
            json!({
                "name": event_type,
                "title": format!("{event_type} as a CloudEvent"),
                "summary": summary,
                "contentType": "application/cloudevents+json",
                "headers": {"$ref": "#/components/schemas/headers"},
                "payload": {"allOf": [
                    {"$ref": "#/components/schemas/alertEvent"},
                    {"properties": {"type": {"const": format!("com.maestro.{event_type}")}}}
                ]}
            }),
        );
    }
    channels.insert(
        "companyEvents".to_owned(),
        json!({
            "address": format!("{prefix}.company.{{type}}"),
            "title": "company events",
            "summary": "A company's itinerary, profile or form of payment changed (the legacy \
                        v1.0 notifications, SPEC §6).",
            "parameters": {"type": {"enum": ["itinerary", "profile", "fop"],
                                    "description": "What changed."}},
            "messages": {"companyEvent": {"$ref": "#/components/messages/companyEvent"}}
        }),
    );
    operations.insert(
        "receiveCompanyEvents".to_owned(),
        receive("companyEvents", "companyEvent"),
    );
    messages.insert(
        "companyEvent".to_owned(),
        json!({
            "name": "company event",
            "title": "A company event as a CloudEvent",
            "contentType": "application/cloudevents+json",
            "headers": {"$ref": "#/components/schemas/headers"},
            "payload": {"$ref": "#/components/schemas/companyEvent"}
        }),
    );
    let mut document = json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "maestro downstream events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Every alert event (except a user's own marks: {}) and every company event, \
                 published to the JetStream stream `{stream}` as a CloudEvents 1.0 structured \
                 JSON message, in the order they were recorded. At least once, normally exactly \
                 once: the `Nats-Msg-Id` header is the event's id, so JetStream drops a \
                 republish within its duplicate window; consumers may also drop an id they have \
                 seen. `data.revision` orders an alert's events.",
                INBOX_ONLY.join(", ")
            )
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas(&naming.source)}
    });
    if let Some(servers) = servers {
        let entries: serde_json::Map<String, Value> = servers
            .hosts()
            .into_iter()
            .enumerate()
            .map(|(n, host)| {
                let protocol = if servers.tls() { "tls" } else { "nats" };
                (
                    format!("nats{}", n + 1),
                    json!({"host": host, "protocol": protocol}),
                )
            })
            .collect();
        document["servers"] = Value::Object(entries);
    }
    document
}

fn receive(channel: &str, message: &str) -> Value {
    json!({
        "action": "receive",
        "channel": {"$ref": format!("#/channels/{channel}")},
        "messages": [{"$ref": format!("#/channels/{channel}/messages/{message}")}]
    })
}

fn upper_first(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn schemas(source: &str) -> Value {
    let timestamp = json!({"type": "string", "format": "date-time"});
    let envelope = |subject: &str, data: &str, extra: Value| {
        let mut properties = json!({
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1,
                   "description": "The event's id; also the Nats-Msg-Id header."},
            "source": {"type": "string", "format": "uri-reference", "examples": [source]},
            "type": {"type": "string"},
            "subject": {"type": "string", "description": subject},
            "time": timestamp,
            "datacontenttype": {"const": "application/json"},
            "data": {"$ref": format!("#/components/schemas/{data}")}
        });
        if let (Value::Object(properties), Value::Object(extra)) = (&mut properties, extra) {
            properties.extend(extra);
        }
        json!({
            "type": "object",
            "required": ["specversion", "id", "source", "type", "subject", "time",
                         "datacontenttype", "data"],
            "properties": properties
        })
    };
    let text = json!({"type": "string"});
    let optional_text = json!({"type": ["string", "null"]});
    json!({
        "headers": {
            "type": "object",
            "properties": {
                "Nats-Msg-Id": {"type": "string", "description": "The CloudEvent's id."},
                "Content-Type": {"const": "application/cloudevents+json; charset=utf-8"}
            }
        },
        "alertEvent": envelope(
            "The alert's id.",
            "alertData",
            json!({"expirytime": {"type": "string", "format": "date-time",
                                  "description": "When the alert expires, as of the event."}})
        ),
        "alertData": {
            "type": "object",
            "required": ["alertId", "partner", "companyId", "userId", "templateId",
                         "revision", "expiresAt"],
            "properties": {
                "alertId": text,
                "partner": {"type": "string", "description": "The partner's id."},
                "companyId": text,
                "userId": text,
                "templateId": optional_text,
                "revision": {"type": "integer", "minimum": 1,
                             "description": "The alert's revision as of the event."},
                "expiresAt": {"type": ["string", "null"], "format": "date-time"}
            }
        },
        "companyEvent": envelope(
            "What the event is about: the trip (itinerary), the user's login (profile) or the \
             company (form of payment).",
            "companyData",
            json!({"type": {"enum": ["com.maestro.company.itinerary",
                                     "com.maestro.company.profile",
                                     "com.maestro.company.fop"]}})
        ),
        "companyData": {
            "type": "object",
            "required": ["eventId", "type", "eventType", "companyId", "userLogin", "tripId",
                         "occurredAt", "receivedAt", "objectUri"],
            "properties": {
                "eventId": text,
                "type": {"enum": ["itinerary", "profile", "fop"]},
                "eventType": {"enum": ["CREATE", "UPDATE", "CANCEL"]},
                "companyId": text,
                "userLogin": optional_text,
                "tripId": optional_text,
                "occurredAt": timestamp,
                "receivedAt": timestamp,
                "objectUri": {"type": "string", "format": "uri",
                              "description": "Where the object is read (a company token)."}
            }
        }
    })
}
