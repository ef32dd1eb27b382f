//! What is published: each event as a CloudEvents 1.0 structured JSON message, on its subject,
//! with the id JetStream deduplicates by (`Nats-Msg-Id`).
//!
//! Alert events (`maestro.alerts.{partner}.{eventType}`, type `com.maestro.{eventType}`): `id`
//! is the outbox event's id, `subject` the alert id, `time` when it happened (an expiry: the
//! alert's `expiresAt`), `expirytime` the alert's expiry as of the event. Every `alert.*` type is
//! published except the user's own marks (`alert.read`, `alert.dismissed`): they are one user's
//! inbox state, not news about the alert for partner-facing systems, and a subject named after
//! the partner should not carry what a user reads.
//!
//! Company events (`maestro.company.{type}`, type `com.maestro.company.{type}`): `id` is the
//! event's own id (`evt_…`), `subject` what it is about — the trip for an itinerary, the user's
//! login for a profile, the company for a form of payment — and `time` its `occurredAt`. Their
//! `data` carries the `objectUri` partners are sent rather than the snapshot, which stays behind
//! the API's authorization.

use serde::Serialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    notifications::document::object_uri,
    store::{
        DownstreamAlertEvent, DownstreamCompanyEvent, EVENT_ALERT_DISMISSED, EVENT_ALERT_READ,
    },
};

/// Events that stay in the inbox: a user's marks.
pub const INBOX_ONLY: [&str; 2] = [EVENT_ALERT_READ, EVENT_ALERT_DISMISSED];

/// Whether an outbox event type goes downstream: any `alert.*` (so a new kind needs no change
/// here) but the user's marks.
pub fn is_published(event_type: &str) -> bool {
    event_type.starts_with("alert.") && !INBOX_ONLY.contains(&event_type)
}

/// One message ready to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub subject: String,
    /// The CloudEvent's id, also `Nats-Msg-Id`.
    pub id: String,
    pub body: Vec<u8>,
}

/// Where messages go and what they name as their source.
#[derive(Clone, Debug)]
pub struct Naming {
    /// The first subject token (`maestro`).
    pub prefix: String,
    /// The CloudEvents `source`: the public URL.
    pub source: String,
}

impl Naming {
    pub fn alert_subject(&self, partner: &str, event_type: &str) -> String {
        format!("{}.alerts.{partner}.{event_type}", self.prefix)
    }

    pub fn company_subject(&self, object_type: &str) -> String {
        format!("{}.company.{object_type}", self.prefix)
    }

    /// The subjects a stream must take: `maestro.alerts.>` and `maestro.company.>`.
    pub fn stream_subjects(&self) -> Vec<String> {
        vec![
            format!("{}.alerts.>", self.prefix),
            format!("{}.company.>", self.prefix),
        ]
    }

    /// The message of an outbox event, `None` for a type that stays in the inbox.
    pub fn alert_message(&self, record: &DownstreamAlertEvent) -> Option<Outgoing> {
        let event = &record.event;
        if !is_published(&event.event_type) {
            return None;
        }
        let expires_at = record.expires_at.map(rfc3339);
        let envelope = Envelope {
            specversion: "1.0",
            id: event.id.to_string(),
            source: &self.source,
            kind: format!("com.maestro.{}", event.event_type),
            subject: &event.alert_id,
            time: rfc3339(event.occurred_at),
            datacontenttype: "application/json",
            expirytime: expires_at.clone(),
            data: AlertData {
                alert_id: &event.alert_id,
                partner: &event.partner_id,
                company_id: &event.company_id,
                user_id: &event.user_id,
                template_id: record.template_id.as_deref(),
                revision: event.revision,
                expires_at,
            },
        };
        Some(Outgoing {
            subject: self.alert_subject(&event.partner_id, &event.event_type),
            id: envelope.id.clone(),
            body: serde_json::to_vec(&envelope).expect("the envelope serialises"),
        })
    }

    pub fn company_message(&self, record: &DownstreamCompanyEvent) -> Outgoing {
        let event = &record.event;
        let subject = match event.object_type.as_str() {
            "itinerary" => event.trip_id.as_deref(),
            "profile" => event.user_login.as_deref(),
            _ => None,
        }
        .unwrap_or(&event.company_id);
        let envelope = Envelope {
            specversion: "1.0",
            id: event.id.clone(),
            source: &self.source,
            kind: format!("com.maestro.company.{}", event.object_type),
            subject,
            time: rfc3339(event.occurred_at),
            datacontenttype: "application/json",
            expirytime: None,
            data: CompanyData {
                event_id: &event.id,
                kind: &event.object_type,
                event_type: &event.event_type,
                company_id: &event.company_id,
                user_login: event.user_login.as_deref(),
                trip_id: event.trip_id.as_deref(),
                occurred_at: rfc3339(event.occurred_at),
                received_at: rfc3339(record.received_at),
                object_uri: object_uri(&self.source, event),
            },
        };
        Outgoing {
            subject: self.company_subject(&event.object_type),
            id: event.id.clone(),
            body: serde_json::to_vec(&envelope).expect("the envelope serialises"),
        }
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .expect("a UTC timestamp formats as RFC 3339")
}

#[derive(Serialize)]
struct Envelope<'a, D> {
    specversion: &'static str,
    id: String,
    source: &'a str,
    #[serde(rename = "type")]
    kind: String,
    subject: &'a str,
    time: String,
    datacontenttype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expirytime: Option<String>,
    data: D,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertData<'a> {
    alert_id: &'a str,
    partner: &'a str,
    company_id: &'a str,
    user_id: &'a str,
    template_id: Option<&'a str>,
    revision: i64,
    expires_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CompanyData<'a> {
    event_id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    event_type: &'a str,
    company_id: &'a str,
    user_login: Option<&'a str>,
    trip_id: Option<&'a str>,
    occurred_at: String,
    received_at: String,
    object_uri: String,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use time::macros::datetime;

    use super::*;
    use crate::store::{CompanyEventRecord, OutboxEvent};

    fn naming() -> Naming {
        Naming {
            prefix: "maestro".into(),
            source: "https://maestro.example.com".into(),
        }
    }

    fn alert_event(event_type: &str) -> DownstreamAlertEvent {
        DownstreamAlertEvent {
            event: OutboxEvent {
                id: 42,
                event_type: event_type.into(),
                alert_id: "alt_1".into(),
                revision: 2,
                partner_id: "groundspan".into(),
                company_id: "c1".into(),
                user_id: "u1".into(),
                occurred_at: datetime!(2026-03-01 10:00:00.5 +01:00),
            },
            template_id: Some("NOTIFY".into()),
            expires_at: Some(datetime!(2026-04-01 00:00 UTC)),
        }
    }

    #[test]
    fn an_alert_event_is_a_structured_cloudevent() {
        let message = naming()
            .alert_message(&alert_event("alert.updated"))
            .unwrap();
        assert_eq!(message.subject, "maestro.alerts.groundspan.alert.updated");
        assert_eq!(message.id, "42");
        let body: Value = serde_json::from_slice(&message.body).unwrap();
        assert_eq!(
            body,
            json!({
                "specversion": "1.0",
                "id": "42",
                "source": "https://maestro.example.com",
                "type": "com.maestro.alert.updated",
                "subject": "alt_1",
                "time": "2026-03-01T09:00:00.5Z",
                "datacontenttype": "application/json",
                "expirytime": "2026-04-01T00:00:00Z",
                "data": {
                    "alertId": "alt_1", "partner": "groundspan", "companyId": "c1",
                    "userId": "u1", "templateId": "NOTIFY", "revision": 2,
                    "expiresAt": "2026-04-01T00:00:00Z"
                }
            })
        );
    }

    #[test]
    fn any_alert_type_goes_downstream_but_the_users_marks() {
        for published in ["alert.created", "alert.expired", "alert.withdrawn"] {
            assert!(naming().alert_message(&alert_event(published)).is_some());
        }
        for kept in INBOX_ONLY {
            assert!(naming().alert_message(&alert_event(kept)).is_none());
        }
    }

    #[test]
    fn a_company_event_names_what_it_is_about() {
        let record =
            |object_type: &str, trip: Option<&str>, login: Option<&str>| DownstreamCompanyEvent {
                position: 7,
                event: CompanyEventRecord {
                    id: "evt_1".into(),
                    object_type: object_type.into(),
                    event_type: "UPDATE".into(),
                    company_id: "c1".into(),
                    user_login: login.map(str::to_owned),
                    trip_id: trip.map(str::to_owned),
                    occurred_at: datetime!(2026-03-01 10:00 UTC),
                },
                received_at: datetime!(2026-03-01 10:00:01 UTC),
            };
        let trip = naming().company_message(&record("itinerary", Some("T1"), Some("a@b")));
        assert_eq!(trip.subject, "maestro.company.itinerary");
        assert_eq!(trip.id, "evt_1");
        let body: Value = serde_json::from_slice(&trip.body).unwrap();
        assert_eq!(body["type"], "com.maestro.company.itinerary");
        assert_eq!(body["subject"], "T1");
        assert_eq!(body["time"], "2026-03-01T10:00:00Z");
        assert!(body.get("expirytime").is_none());
        assert_eq!(
            body["data"],
            json!({
                "eventId": "evt_1", "type": "itinerary", "eventType": "UPDATE",
                "companyId": "c1", "userLogin": "a@b", "tripId": "T1",
                "occurredAt": "2026-03-01T10:00:00Z", "receivedAt": "2026-03-01T10:00:01Z",
                "objectUri": "https://maestro.example.com/api/travel/trip/v1.1/T1"
            })
        );
        let profile = naming().company_message(&record("profile", None, Some("a@b")));
        let body: Value = serde_json::from_slice(&profile.body).unwrap();
        assert_eq!(body["subject"], "a@b");
        let fop = naming().company_message(&record("fop", None, None));
        let body: Value = serde_json::from_slice(&fop.body).unwrap();
        assert_eq!(
            (body["subject"].as_str(), fop.subject.as_str()),
            (Some("c1"), "maestro.company.fop")
        );
    }
}
