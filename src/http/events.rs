//! `POST /internal/v1/company-events`: internal producers publish company events.

use std::sync::Arc;

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    error::ErrorBody,
    extract::{EventPublisher, JsonBody},
};
use crate::{App, error::Error};

/// The event id and how many deliveries it owes (one per matching subscription).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventAccepted {
    pub event_id: String,
    pub deliveries: usize,
}

/// The body: `{type: itinerary|profile|fop, eventType: CREATE|UPDATE|CANCEL, companyId,
/// userLogin (itinerary, profile), tripId (itinerary), occurredAt, object (optional snapshot)}`.
/// While the delivery worker is behind (`MAESTRO_DELIVERY_LAG_LIMIT`) the event waits for it up
/// to a second before it is recorded, so that a producer publishing flat out slows to the pace
/// of the deliveries; it is never refused for it.
#[utoipa::path(
    operation_id = "publishCompanyEvent",
    post, path = "/internal/v1/company-events", tag = "company events",
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 202, description = "Recorded with its deliveries, after commit", body = EventAccepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
    ),
    security(("bearer" = ["maestro.events.publish"]))
)]
pub async fn publish_company_event(
    State(app): State<Arc<App>>,
    EventPublisher(caller): EventPublisher,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<EventAccepted>), Error> {
    let recorded = app.events.publish(&caller, &body).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(EventAccepted {
            event_id: recorded.event_id,
            deliveries: recorded.deliveries.len(),
        }),
    ))
}
