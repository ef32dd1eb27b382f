//! Operational endpoints: probes, metrics, the server's public keys.

use std::sync::Arc;

use axum::{Json, extract::State, http::header, response::IntoResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use crate::{App, error::Error};

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(operation_id = "checkHealth", get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database answers, and the server is not shutting down: from a shutdown signal on, this
/// answers 503 for the drain delay while every other request is still served.
#[utoipa::path(operation_id = "checkReadiness", get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn readyz(State(app): State<Arc<App>>) -> Result<Json<Health>, Error> {
    if app.is_draining() {
        return Err(Error::unavailable(
            "The server is shutting down; send requests to another instance.",
        ));
    }
    app.store.ping().await?;
    Ok(Json(Health { status: "ready" }))
}

/// The server's token signing keys (JWKS).
#[utoipa::path(operation_id = "getJwks", get, path = "/oauth2/v0/jwks", tag = "operations",
    responses((status = 200, description = "A JWK Set", content_type = "application/json", body = Object)))]
pub async fn jwks(State(app): State<Arc<App>>) -> impl IntoResponse {
    Json(app.keyring.public_jwks().as_ref().clone())
}

/// Prometheus text exposition, with the scrape-time gauges read now.
pub async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    crate::telemetry::gauges::sample(&app).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
}
