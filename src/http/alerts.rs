//! The Maestro v4 alerts endpoints (SPEC §4).

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    error::ErrorBody,
    extract::{AlertSubmitter, JsonBody},
};
use crate::{
    App,
    alerts::{AlertBody, Preview, Receipt, ReceiptStatus},
    error::Error,
};

/// `{"alertId", "status", "message"}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertResponse {
    pub alert_id: String,
    /// `received` for a create (or an identical retry), `updated` for an update, `withdrawn`
    /// for a withdrawal (and for an identical retry of the POST of an alert since withdrawn).
    #[schema(example = "received", value_type = ReceiptStatusDoc)]
    pub status: &'static str,
    pub message: &'static str,
}

impl From<Receipt> for AlertResponse {
    fn from(receipt: Receipt) -> Self {
        AlertResponse {
            alert_id: receipt.alert_id,
            status: match receipt.status {
                ReceiptStatus::Received => "received",
                ReceiptStatus::Updated => "updated",
                ReceiptStatus::Withdrawn => "withdrawn",
            },
            message: receipt.message,
        }
    }
}

/// What became of a submission (documentation of `status`).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = ReceiptStatus, rename_all = "lowercase")]
pub enum ReceiptStatusDoc {
    Received,
    Updated,
    Withdrawn,
}

/// The alert submission (documentation of the body; the server parses it field by field so that
/// it can report every problem at once).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = AlertRequest, rename_all = "camelCase")]
pub struct AlertRequestDoc {
    /// Unique per (partner, company); identifies the alert for retries and updates.
    #[schema(min_length = 1, max_length = 255)]
    ext_ref: String,
    /// The user the alert is for (compared without regard to case).
    #[schema(min_length = 1, max_length = 255)]
    user_id: String,
    /// Required only when the token carries no company; must match it otherwise.
    #[schema(min_length = 1, max_length = 255)]
    company_id: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    /// Checked against the template's JSON Schema (`GET /maestro/v4/templates/{templateId}`).
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
    #[schema(min_length = 1, max_length = 128)]
    template_id: String,
    /// May be empty.
    #[schema(max_length = 64)]
    msg_type: String,
    /// Later than now and than createdAt.
    #[schema(format = DateTime)]
    expires_at: String,
    #[schema(max_length = 255)]
    topic: Option<String>,
    #[schema(max_length = 500)]
    title: Option<String>,
    /// Must equal the token's concur.appId when given.
    #[schema(min_length = 1, max_length = 128)]
    application_id: Option<String>,
}

#[utoipa::path(
    operation_id = "createAlert",
    post, path = "/maestro/v4/alerts", tag = "alerts",
    request_body(content = AlertRequestDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "Created (or an identical retry)", body = AlertResponse),
        (status = 400, description = "Malformed JSON, missing or invalid fields, schema violations", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "extRef exists with other content; details.alertId names it", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
    ),
    security(("bearer" = ["maestro.alerts.writeonly"]))
)]
pub async fn create_alert(
    State(app): State<Arc<App>>,
    AlertSubmitter(submitter): AlertSubmitter,
    JsonBody(body): JsonBody<AlertBody>,
) -> Result<Json<AlertResponse>, Error> {
    Ok(Json(app.alerts.create(&submitter, &body).await?.into()))
}

#[utoipa::path(
    operation_id = "updateAlertByExtRef",
    put, path = "/maestro/v4/alerts", tag = "alerts",
    request_body(content = AlertRequestDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated", body = AlertResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No alert with this extRef for the partner and company", body = ErrorBody),
        (status = 409, description = "The alert was withdrawn (ALERT_WITHDRAWN): it takes no more updates; details.alertId names it", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
    ),
    security(("bearer" = ["maestro.alerts.writeonly"]))
)]
pub async fn update_alert_by_ext_ref(
    State(app): State<Arc<App>>,
    AlertSubmitter(submitter): AlertSubmitter,
    JsonBody(body): JsonBody<AlertBody>,
) -> Result<Json<AlertResponse>, Error> {
    Ok(Json(
        app.alerts.update(&submitter, None, &body).await?.into(),
    ))
}

#[utoipa::path(
    operation_id = "updateAlertById",
    put, path = "/maestro/v4/alerts/{alertId}", tag = "alerts",
    params(("alertId" = String, Path, description = "The id returned when the alert was created")),
    request_body(content = AlertRequestDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated", body = AlertResponse),
        (status = 400, description = "Invalid body, or an extRef other than the stored one", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown alert, or not the caller's", body = ErrorBody),
        (status = 409, description = "The alert was withdrawn (ALERT_WITHDRAWN): it takes no more updates; details.alertId names it", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
    ),
    security(("bearer" = ["maestro.alerts.writeonly"]))
)]
pub async fn update_alert_by_id(
    State(app): State<Arc<App>>,
    Path(alert_id): Path<String>,
    AlertSubmitter(submitter): AlertSubmitter,
    JsonBody(body): JsonBody<AlertBody>,
) -> Result<Json<AlertResponse>, Error> {
    Ok(Json(
        app.alerts
            .update(&submitter, Some(&alert_id), &body)
            .await?
            .into(),
    ))
}

/// Withdraws an alert that is no longer valid (an offer sold out).
///
/// It leaves every inbox at once and the live streams are told (`alert.withdrawn`). A repeat
/// answers 200 again and changes nothing. A withdrawn alert cannot be updated (409
/// `ALERT_WITHDRAWN`) and keeps its extRef. A token that carries a company withdraws that
/// company's alerts only; an app token, any of its partner's. Counts against the partner's rate
/// limit.
#[utoipa::path(
    delete, path = "/maestro/v4/alerts/{alertId}", tag = "alerts", operation_id = "withdrawAlert",
    params(("alertId" = String, Path, description = "The id returned when the alert was created")),
    responses(
        (status = 200, description = "Withdrawn now, or before (the message says which)", body = AlertResponse),
        (status = 400, description = "The alertId holds a character maestro does not accept", body = ErrorBody),
        (status = 401, description = "No bearer token, or one that fails verification", body = ErrorBody),
        (status = 403, description = "The token lacks maestro.alerts.writeonly, or names no registered partner", body = ErrorBody),
        (status = 404, description = "Unknown alert, or another partner's or company's", body = ErrorBody),
        (status = 429, description = "The partner is over its rate limit; Retry-After says when to retry", body = ErrorBody),
        (status = 503, description = "Overloaded, or the database cannot be reached", body = ErrorBody),
        (status = 504, description = "The database did not answer in time; nothing was withdrawn", body = ErrorBody),
    ),
    security(("bearer" = ["maestro.alerts.writeonly"]))
)]
pub async fn withdraw_alert(
    State(app): State<Arc<App>>,
    AlertSubmitter(submitter): AlertSubmitter,
    Path(alert_id): Path<String>,
) -> Result<Json<AlertResponse>, Error> {
    Ok(Json(
        app.alerts.withdraw(&submitter, &alert_id).await?.into(),
    ))
}

/// `{"templateId", "templateVersion", "title", "html", "text"}`: the alert as an inbox would
/// show it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewResponse {
    pub template_id: String,
    /// The template version the alert was checked and rendered with.
    pub template_version: i64,
    /// Plain text.
    pub title: String,
    /// The card: escaped, links and images `https` on the partner's domains.
    pub html: String,
    /// The plain-text fallback.
    pub text: String,
}

impl From<Preview> for PreviewResponse {
    fn from(preview: Preview) -> Self {
        PreviewResponse {
            template_id: preview.template_id,
            template_version: preview.template_version,
            title: preview.rendering.title.clone(),
            html: preview.rendering.html.clone(),
            text: preview.rendering.text.clone(),
        }
    }
}

/// Checks an alert as a POST would and renders it, storing nothing.
///
/// The body is a POST's, checked by the same code (the same errors, all at once) and rendered
/// through its template; nothing is stored and no inbox is told. Whether the extRef is taken is
/// not checked. Counts against the partner's rate limit, like a POST.
#[utoipa::path(
    post, path = "/maestro/v4/alerts/preview", tag = "alerts", operation_id = "previewAlert",
    request_body(content = AlertRequestDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "The alert would be accepted; this is its rendering", body = PreviewResponse),
        (status = 400, description = "What a POST would refuse: malformed JSON, missing or invalid fields, schema violations, unknown template, a template that cannot render it", body = ErrorBody),
        (status = 401, description = "No bearer token, or one that fails verification", body = ErrorBody),
        (status = 403, description = "The token lacks maestro.alerts.writeonly or names no registered partner, or the body's companyId or applicationId is not the token's", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 429, description = "The partner is over its rate limit; Retry-After says when to retry", body = ErrorBody),
        (status = 503, description = "Overloaded, or the database cannot be reached", body = ErrorBody),
        (status = 504, description = "The database did not answer in time", body = ErrorBody),
    ),
    security(("bearer" = ["maestro.alerts.writeonly"]))
)]
pub async fn preview_alert(
    State(app): State<Arc<App>>,
    AlertSubmitter(submitter): AlertSubmitter,
    JsonBody(body): JsonBody<AlertBody>,
) -> Result<Json<PreviewResponse>, Error> {
    Ok(Json(app.alerts.preview(&submitter, &body)?.into()))
}
