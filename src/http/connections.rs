//! The company connections API (SPEC §2.1): a company administrator connects, lists and
//! disconnects partner apps. JSON, in the Maestro error format.

use std::sync::Arc;

use axum::{
    Json,
    extract::{FromRequestParts, Path, State},
    http::{StatusCode, request::Parts},
};
use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::{
    error::ErrorBody,
    extract::{Caller, JsonBody},
};
use crate::{
    App,
    apps::{CompanyAdmin, connections::app_id_of},
    error::Error,
};

/// The caller as a company administrator, decided from the token before any body is read.
pub struct AdminCaller(pub CompanyAdmin);

impl FromRequestParts<Arc<App>> for AdminCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        let Caller(principal) = Caller::from_request_parts(parts, app).await?;
        Ok(AdminCaller(CompanyAdmin::of(&principal)?))
    }
}

/// `{"appId": "groundspan"}`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = ConnectRequest, rename_all = "camelCase")]
pub struct ConnectRequestDoc {
    /// The partner app to connect (its client id).
    app_id: String,
}

/// A new connection (or a new request token for an existing one).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionCreated {
    pub app_id: String,
    pub company_id: String,
    /// Single use; redeemed by the partner at the token endpoint within 24 hours.
    pub request_token: String,
    /// RFC 3339.
    pub expires_at: String,
    /// The partner's redirect URI with `id`, `requestToken` and `userId`: where the
    /// administrator goes next.
    pub redirect_url: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionItem {
    pub app_id: String,
    /// RFC 3339.
    pub connected_at: String,
    /// The administrator who connected it.
    pub connected_by: String,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionItem>,
}

/// To the second: the API's other times are written so.
fn rfc3339(at: time::OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[utoipa::path(
    operation_id = "connectApp",
    post, path = "/app-mgmt/v0/connections", tag = "app center",
    request_body(content = ConnectRequestDoc, content_type = "application/json"),
    responses(
        (status = 201, description = "Connected; the request token is in the answer and the redirect URL", body = ConnectionCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Not an administrator of the company", body = ErrorBody),
        (status = 404, description = "Unknown app", body = ErrorBody),
        (status = 409, description = "The app has no redirect URI", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn connect(
    State(app): State<Arc<App>>,
    AdminCaller(admin): AdminCaller,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<ConnectionCreated>), Error> {
    let connected = app.connections.connect(&admin, app_id_of(&body)?).await?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectionCreated {
            app_id: connected.app_id,
            company_id: connected.company_id,
            request_token: connected.request_token,
            expires_at: rfc3339(connected.expires_at),
            redirect_url: connected.redirect_url,
        }),
    ))
}

#[utoipa::path(
    operation_id = "listConnections",
    get, path = "/app-mgmt/v0/connections", tag = "app center",
    responses(
        (status = 200, body = ConnectionList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(app): State<Arc<App>>,
    AdminCaller(admin): AdminCaller,
) -> Result<Json<ConnectionList>, Error> {
    let connections = app.connections.list(&admin).await?;
    Ok(Json(ConnectionList {
        connections: connections
            .into_iter()
            .map(|c| ConnectionItem {
                app_id: c.partner_id,
                connected_at: rfc3339(c.connected_at),
                connected_by: c.connected_by,
            })
            .collect(),
    }))
}

#[utoipa::path(
    operation_id = "disconnectApp",
    delete, path = "/app-mgmt/v0/connections/{appId}", tag = "app center",
    params(("appId" = String, Path)),
    responses(
        (status = 204, description = "Disconnected (also when it was not connected)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown app", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn disconnect(
    State(app): State<Arc<App>>,
    AdminCaller(admin): AdminCaller,
    Path(app_id): Path<String>,
) -> Result<StatusCode, Error> {
    app.connections.disconnect(&admin, &app_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
