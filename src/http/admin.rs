//! The admin API of deliveries (`maestro.admin`): list them, read one with its attempts, replay
//! one that ended.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use utoipa::{IntoParams, ToSchema};

use super::{
    error::ErrorBody,
    extract::{Caller, QueryParams},
};
use crate::{
    App,
    error::Error,
    notifications::admin::authorize,
    store::{AttemptRecord, DeliverySummary},
};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only deliveries in this state.
    #[param(value_type = Option<DeliveryStatusDoc>, inline)]
    pub status: Option<String>,
    /// Only this partner's deliveries.
    #[param(min_length = 1, max_length = 64)]
    pub partner: Option<String>,
    /// At most this many (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// A delivery's state (documentation of the `status` parameter; the domain checks it).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = DeliveryStatus, rename_all = "lowercase")]
pub enum DeliveryStatusDoc {
    Pending,
    Delivered,
    Failed,
}

/// A delivery: its id is the `webhook-id` the partner sees on every attempt.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub partner_id: String,
    pub company_id: String,
    /// itinerary, profile or fop.
    pub object_type: String,
    /// CREATE, UPDATE or CANCEL.
    pub event_type: String,
    /// pending, delivered or failed.
    pub status: String,
    pub attempts: i64,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<String>,
    /// The partner's HTTP status on the latest attempt.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub attempt: i64,
    pub started_at: String,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    /// The first KiB of the partner's answer.
    pub response_body: Option<String>,
    /// delivered, retry, failed or gone.
    pub outcome: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<Delivery>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub attempts: Vec<Attempt>,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

impl From<DeliverySummary> for Delivery {
    fn from(d: DeliverySummary) -> Self {
        Delivery {
            id: d.id,
            event_id: d.event_id,
            partner_id: d.partner_id,
            company_id: d.company_id,
            object_type: d.object_type,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.map(rfc3339),
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

impl From<AttemptRecord> for Attempt {
    fn from(a: AttemptRecord) -> Self {
        Attempt {
            attempt: a.attempt,
            started_at: rfc3339(a.started_at),
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error,
            response_body: a.response_body,
            outcome: a.outcome,
        }
    }
}

/// Deliveries, newest first.
#[utoipa::path(
    operation_id = "listDeliveries",
    get, path = "/admin/v1/deliveries", tag = "admin", params(DeliveryQuery),
    responses(
        (status = 200, body = DeliveryList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = ["maestro.admin"]))
)]
pub async fn list_deliveries(
    State(app): State<Arc<App>>,
    Caller(caller): Caller,
    QueryParams(query): QueryParams<DeliveryQuery>,
) -> Result<Json<DeliveryList>, Error> {
    authorize(&caller)?;
    let items = app
        .delivery_admin
        .list(
            query.status.as_deref(),
            query.partner.as_deref(),
            query.limit,
        )
        .await?;
    Ok(Json(DeliveryList {
        items: items.into_iter().map(Delivery::from).collect(),
    }))
}

/// One delivery with every attempt (time, status, latency, the start of the answer).
#[utoipa::path(
    operation_id = "getDelivery",
    get, path = "/admin/v1/deliveries/{deliveryId}", tag = "admin",
    params(("deliveryId" = String, Path, description = "The delivery's id (its webhook-id)")),
    responses(
        (status = 200, body = DeliveryDetail),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("bearer" = ["maestro.admin"]))
)]
pub async fn show_delivery(
    State(app): State<Arc<App>>,
    Caller(caller): Caller,
    Path(delivery_id): Path<String>,
) -> Result<Json<DeliveryDetail>, Error> {
    authorize(&caller)?;
    let (delivery, attempts) = app.delivery_admin.show(&delivery_id).await?;
    Ok(Json(DeliveryDetail {
        delivery: delivery.into(),
        attempts: attempts.into_iter().map(Attempt::from).collect(),
    }))
}

/// Sends an ended delivery again, now, with the same `webhook-id` (a fresh retry schedule).
#[utoipa::path(
    operation_id = "replayDelivery",
    post, path = "/admin/v1/deliveries/{deliveryId}/replay", tag = "admin",
    params(("deliveryId" = String, Path, description = "The delivery's id (its webhook-id)")),
    responses(
        (status = 202, description = "Pending again", body = Delivery),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Still pending", body = ErrorBody),
    ),
    security(("bearer" = ["maestro.admin"]))
)]
pub async fn replay_delivery(
    State(app): State<Arc<App>>,
    Caller(caller): Caller,
    Path(delivery_id): Path<String>,
) -> Result<(StatusCode, Json<Delivery>), Error> {
    authorize(&caller)?;
    let delivery = app.delivery_admin.replay(&delivery_id).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}
