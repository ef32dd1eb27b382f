//! The HTTP surfaces. Every route is listed here, in [`router`]; handlers live in one module
//! per surface and call into the domain, never into the store's SQL.

pub mod admin;
pub mod alerts;
pub mod connections;
pub mod cors;
pub mod envelope;
pub mod error;
pub mod events;
pub mod extract;
pub mod inbox;
pub mod inbox_stream;
pub mod legacy;
pub mod oauth;
pub mod openapi;
pub mod ops;
pub mod page;
pub mod server;
pub mod target;
pub mod templates;

use std::sync::Arc;

use axum::{
    Json, Router,
    http::Method,
    middleware,
    response::Html,
    routing::{get, post},
};
use tower_http::{catch_panic::CatchPanicLayer, timeout::RequestBodyDeadlineLayer};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    App,
    error::{Error, ErrorCode},
};

/// The documented JSON routes and their OpenAPI description, built from the same declarations
/// so that they cannot drift apart.
fn documented_routes() -> (Router<Arc<App>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(
            alerts::create_alert,
            alerts::update_alert_by_ext_ref
        ))
        .routes(routes!(alerts::update_alert_by_id, alerts::withdraw_alert))
        .routes(routes!(alerts::preview_alert))
        .routes(routes!(templates::list))
        .routes(routes!(templates::show))
        .routes(routes!(inbox::list))
        .routes(routes!(inbox::read))
        .routes(routes!(inbox::dismiss))
        .routes(routes!(inbox::snooze))
        .routes(routes!(inbox::read_all))
        .routes(routes!(inbox_stream::stream))
        .routes(routes!(events::publish_company_event))
        .routes(routes!(admin::list_deliveries))
        .routes(routes!(admin::show_delivery))
        .routes(routes!(admin::replay_delivery))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::jwks))
        .routes(routes!(connections::connect, connections::list))
        .routes(routes!(connections::disconnect))
        .routes(routes!(oauth::token))
        .split_for_parts()
}

fn api_routes(settings: &crate::Settings) -> Router<Arc<App>> {
    let (documented, declared) = documented_routes();
    let document = Arc::new(openapi::document(declared, &settings.public_url));
    let asyncapi = Arc::new(crate::downstream::asyncapi::for_settings(settings));
    let docs_page = Html(utoipa_scalar::Scalar::new(document.as_ref().clone()).to_html());
    let json = documented
        // The inbox page: HTML, so not part of the OpenAPI document.
        .route("/inbox", get(page::inbox))
        .route("/inbox/cards", get(page::cards))
        .route("/inbox/login", get(page::login))
        .route("/inbox/logout", post(page::logout))
        .route("/inbox/assets/inbox.js", get(page::script))
        .route("/inbox/assets/inbox.css", get(page::styles))
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { Json(document.as_ref().clone()) }
            }),
        )
        // The AsyncAPI 3.0 document of what is published to NATS (SPEC §4.2).
        .route(
            "/asyncapi.json",
            get(move || async move { Json(asyncapi.as_ref().clone()) }),
        )
        // The document in a browser: Scalar's page, which loads its script from a CDN.
        .route("/docs", get(move || async move { docs_page.clone() }))
        .route_layer(middleware::from_fn(target::refuse_hostile_target));
    // Legacy company notifications (v1.0): XML, so not part of the OpenAPI document.
    let legacy = Router::new()
        .route("/api/company/v1.0/subscribe", post(legacy::subscribe))
        .route("/api/company/v1.0/unsubscribe", post(legacy::unsubscribe))
        .route("/api/travel/trip/v1.1/{trip_id}", get(legacy::trip))
        .route("/api/travelprofile/v2.0/profile", get(legacy::profile))
        .route_layer(middleware::from_fn(legacy::refuse_hostile_target));
    json.merge(legacy)
}

/// The OpenAPI 3.1 document of every JSON endpoint, as served with `public_url`.
pub fn openapi(public_url: &str) -> serde_json::Value {
    openapi::document(documented_routes().1, public_url)
}

pub fn router(app: Arc<App>) -> Router {
    let routes = if app.settings.role.serves_api() {
        api_routes(&app.settings)
    } else {
        // A worker-only instance answers the probes and metrics, and nothing else.
        Router::new()
            .route("/healthz", get(ops::healthz))
            .route("/readyz", get(ops::readyz))
    };
    routes
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { Error::new(ErrorCode::RouteNotFound, "No such endpoint.") })
        .method_not_allowed_fallback(|method: Method| async move {
            Error::new(
                ErrorCode::MethodNotAllowed,
                format!("{method} is not allowed on this endpoint."),
            )
        })
        // Outside the routes' own answers (a preflight's OPTIONS would be a 405 otherwise).
        .layer(middleware::from_fn_with_state(
            cors::inbox_cors(&app.settings.inbox_allowed_origins),
            cors::gate,
        ))
        // A body must have arrived `request_timeout` after the request started; reading it
        // later fails, and the body extractor answers 408.
        .layer(RequestBodyDeadlineLayer::new(app.settings.request_timeout))
        // Inner to outer: a panic becomes a 500 that still gets the envelope's headers.
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            axum::response::IntoResponse::into_response(Error::Internal(anyhow::anyhow!("panic")))
        }))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            envelope::envelope,
        ))
        .with_state(app)
}
