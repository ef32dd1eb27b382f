//! Company events entering the system: checked, then recorded together with one delivery per
//! matching subscription.

use std::sync::Arc;

use serde_json::Value;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{DeliveryWorker, ObjectType};
use crate::{
    auth::{Principal, SCOPE_EVENTS_PUBLISH, TokenKind},
    error::{Error, ErrorCode, Problem, Result},
    store::{DeliveryRecord, DynStore, NewCompanyEvent},
};

const EVENT_TYPES: [&str; 3] = ["CREATE", "UPDATE", "CANCEL"];

/// What the producer is told once the event and its deliveries are committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub event_id: String,
    pub deliveries: Vec<DeliveryRecord>,
}

pub struct EventIntake {
    store: DynStore,
    /// What paces intake (see `delivery::pacing`), woken when deliveries are recorded: this
    /// process's delivery worker, or on an instance without one a worker that never runs and
    /// paces by the lag the others report (`delivery::shared_lag`).
    worker: Option<Arc<DeliveryWorker>>,
}

impl EventIntake {
    pub fn new(store: DynStore, worker: Option<Arc<DeliveryWorker>>) -> Self {
        EventIntake { store, worker }
    }

    /// `POST /internal/v1/company-events`: an app token with `maestro.events.publish`.
    pub async fn publish(&self, caller: &Principal, body: &Value) -> Result<Recorded> {
        authorize(caller)?;
        self.record(parse(body, OffsetDateTime::now_utc())?).await
    }

    /// Records an event already checked (also used by `maestro event publish`).
    pub async fn record(&self, event: NewCompanyEvent) -> Result<Recorded> {
        if let Some(worker) = &self.worker {
            worker.pace_intake().await;
        }
        let deliveries = self.store.record_company_event(&event).await?;
        if let (Some(worker), false) = (&self.worker, deliveries.is_empty()) {
            worker.wake();
        }
        Ok(Recorded {
            event_id: event.id,
            deliveries,
        })
    }
}

/// Who may publish company events: an app token with `maestro.events.publish`.
pub fn authorize(caller: &Principal) -> Result<()> {
    if caller.kind != TokenKind::App {
        return Err(Error::new(
            ErrorCode::InsufficientScope,
            "Company events are published with an app token.",
        ));
    }
    caller.require_scope(SCOPE_EVENTS_PUBLISH)
}

/// Reads an event body, reporting every problem at once.
pub fn parse(body: &Value, now: OffsetDateTime) -> Result<NewCompanyEvent> {
    let mut problems = Vec::new();
    let text = |key: &str, problems: &mut Vec<Problem>, required: bool| -> Option<String> {
        match body.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 255 => Some(s.clone()),
            None | Some(Value::Null) if !required => None,
            None | Some(Value::Null) => {
                problems.push(Problem::at(
                    ErrorCode::MissingField,
                    format!("/{key}"),
                    format!("{key} is required."),
                ));
                None
            }
            Some(_) => {
                problems.push(Problem::at(
                    ErrorCode::InvalidField,
                    format!("/{key}"),
                    format!("{key} must be a non-empty string of at most 255 characters."),
                ));
                None
            }
        }
    };
    if !body.is_object() {
        return Err(Error::at(
            ErrorCode::InvalidJson,
            "",
            "The request body must be a JSON object.",
        ));
    }
    let object_type = text("type", &mut problems, true).and_then(|t| {
        let parsed = ObjectType::parse(&t);
        if parsed.is_none() {
            problems.push(Problem::at(
                ErrorCode::InvalidField,
                "/type",
                "type must be itinerary, profile or fop.",
            ));
        }
        parsed
    });
    let event_type = text("eventType", &mut problems, true).and_then(|t| {
        let upper = t.to_ascii_uppercase();
        if EVENT_TYPES.contains(&upper.as_str()) {
            Some(upper)
        } else {
            problems.push(Problem::at(
                ErrorCode::InvalidField,
                "/eventType",
                "eventType must be CREATE, UPDATE or CANCEL.",
            ));
            None
        }
    });
    let company_id = text("companyId", &mut problems, true);
    let needs_user = object_type.is_some_and(|t| t != ObjectType::Fop);
    let user_login = text("userLogin", &mut problems, needs_user);
    let trip_id = text(
        "tripId",
        &mut problems,
        object_type == Some(ObjectType::Itinerary),
    );
    let occurred_at = text("occurredAt", &mut problems, true).and_then(|t| {
        let parsed = OffsetDateTime::parse(&t, &Rfc3339).ok();
        if parsed.is_none() {
            problems.push(Problem::at(
                ErrorCode::InvalidField,
                "/occurredAt",
                "occurredAt must be an RFC 3339 date-time.",
            ));
        }
        parsed
    });
    let object = match body.get("object") {
        None | Some(Value::Null) => None,
        Some(snapshot @ Value::Object(_)) => {
            super::objects::check_snapshot(snapshot, "/object", &mut problems);
            Some(snapshot.to_string())
        }
        Some(_) => {
            problems.push(Problem::at(
                ErrorCode::InvalidField,
                "/object",
                "object must be a JSON object (a snapshot).",
            ));
            None
        }
    };
    if !problems.is_empty() {
        return Err(Error::Rejected(problems));
    }
    Ok(NewCompanyEvent {
        id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        object_type: object_type.expect("checked").as_str().to_owned(),
        event_type: event_type.expect("checked"),
        company_id: crate::auth::normalize_company_id(&company_id.expect("checked")),
        user_login,
        trip_id,
        occurred_at: occurred_at.expect("checked"),
        object,
        received_at: now,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_itinerary_event_needs_its_trip_and_user() {
        let err = parse(
            &json!({"type": "itinerary", "eventType": "create", "companyId": "C",
                                "occurredAt": "2026-01-01T00:00:00Z"}),
            OffsetDateTime::now_utc(),
        )
        .unwrap_err();
        let fields: Vec<_> = err
            .problems()
            .iter()
            .map(|p| p.field().unwrap().to_owned())
            .collect();
        assert_eq!(fields, ["/userLogin", "/tripId"]);
    }

    #[test]
    fn a_fop_event_needs_neither() {
        let event = parse(
            &json!({"type": "FOP", "eventType": "update", "companyId": "C",
                                  "occurredAt": "2026-01-01T00:00:00Z"}),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        assert_eq!(
            (event.object_type.as_str(), event.event_type.as_str()),
            ("fop", "UPDATE")
        );
        assert_eq!(event.company_id, "c");
    }
}
