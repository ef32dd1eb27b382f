//! What every response shares, errors and 404/405 included: the correlation id, the JSON content
//! type with its charset, `Cache-Control`, request metrics, and a log span carrying the
//! correlation id (the exported trace's server span, continuing the caller's `traceparent`).
//! Also the load shedding of the API routes ([`Admission`]).
//!
//! The correlation id stays hand-written rather than tower-http's request-id layer: that layer
//! keeps whatever value the caller sent, and the rule here is to keep it only when it is a UUID.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    App,
    auth::Principal,
    error::{Error, ErrorCode},
    telemetry::{self, traces},
};

pub const CORRELATION_HEADER: HeaderName = HeaderName::from_static("concur-correlationid");
const JSON_UTF8: &str = "application/json;charset=UTF-8";

/// The correlation id of the request being handled.
#[derive(Clone, Debug)]
pub struct CorrelationId(pub String);

/// Routes that stay answerable under load: probes and scrapes must not be shed.
fn is_operational(route: &str) -> bool {
    matches!(route, "/healthz" | "/readyz" | "/metrics")
}

/// A request's claim on one of the permits that bound the work done at once. The body
/// extractor hands it back while the body arrives and claims it again after: a client that is
/// slow to send (or never sends) its body holds no permit meant for work.
#[derive(Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    held: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
}

impl Admission {
    fn new(permits: Arc<Semaphore>) -> Self {
        Admission {
            permits,
            held: Arc::default(),
        }
    }

    /// Takes a permit, or refuses at once (503): load is shed, never queued.
    pub fn admit(&self) -> Result<(), Error> {
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            tracing::warn!("over the concurrency limit; shedding the request");
            Error::unavailable("The service is at capacity; retry shortly.")
        })?;
        *self.held.lock().expect("admission lock poisoned") = Some(permit);
        Ok(())
    }

    /// Hands the permit back until [`Admission::admit`] is called again.
    pub fn release(&self) {
        self.held.lock().expect("admission lock poisoned").take();
    }
}

/// What the extractors learn of the caller, for the envelope's log line and metrics: the
/// partner its token names, and whether that partner is registered. Only a registered partner
/// labels metrics, so that the label has no more values than there are partners.
#[derive(Clone, Default)]
pub struct CallerNote(Arc<Mutex<NotedCaller>>);

#[derive(Default)]
struct NotedCaller {
    partner: Option<String>,
    registered: bool,
}

impl CallerNote {
    fn update(parts: &Parts, change: impl FnOnce(&mut NotedCaller)) {
        if let Some(note) = parts.extensions.get::<CallerNote>() {
            change(&mut note.0.lock().expect("caller note poisoned"));
        }
    }

    /// The partner named by the request's token has been found in the catalogue.
    pub fn partner_registered(parts: &Parts) {
        CallerNote::update(parts, |noted| noted.registered = noted.partner.is_some());
    }

    fn take(&self) -> NotedCaller {
        std::mem::take(&mut self.0.lock().expect("caller note poisoned"))
    }
}

/// Verifies a request's token (see `App::authenticate`) and notes the partner it names.
pub fn authenticate(app: &App, parts: &Parts, token: &str) -> Result<Principal, Error> {
    let principal = app.authenticate(token)?;
    if let Some(partner) = &principal.app_id {
        CallerNote::update(parts, |noted| noted.partner = Some(partner.clone()));
    }
    Ok(principal)
}

pub async fn envelope(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    // The caller's id is kept only when it is a valid UUID, so logs cannot be forged through it.
    let correlation_id = request
        .headers()
        .get(&CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v.trim()).ok())
        .unwrap_or_else(Uuid::new_v4)
        .to_string();
    request
        .extensions_mut()
        .insert(CorrelationId(correlation_id.clone()));
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let span = match traces::enabled() {
        true => {
            let span = tracing::info_span!("request", correlation_id = %correlation_id, %method,
                %route, otel.name = %format_args!("{method} {route}"), otel.kind = "server");
            traces::continue_from(&span, request.headers());
            traces::set_attribute(&span, "http.request.method", method.clone());
            traces::set_attribute(&span, "http.route", route.clone());
            span
        }
        false => tracing::info_span!("request", correlation_id = %correlation_id, %method, %route),
    };
    let note = CallerNote::default();
    request.extensions_mut().insert(note.clone());

    let mut response = async {
        if let Some(oversized) = super::server::oversized_head(&request) {
            return oversized.into_response();
        }
        // Load shedding: a request beyond the limit is refused at once rather than queued.
        if is_operational(&route) {
            return next.run(request).await;
        }
        let admission = Admission::new(app.admission.clone());
        if let Err(shed) = admission.admit() {
            return shed.into_response();
        }
        // The request's copy may be dropped as soon as its parts are extracted; this one keeps
        // the permit until the answer is ready.
        request.extensions_mut().insert(admission.clone());
        let _in_flight = app.metrics.in_flight();
        let response = next.run(request).await;
        drop(admission);
        response
    }
    .instrument(span.clone())
    .await;

    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    app.metrics
        .request_finished(&method, &route, status, elapsed);
    let caller = note.take();
    let code = response
        .extensions()
        .get::<ErrorCode>()
        .map(|code| code.as_str());
    let metric_partner = match caller.registered {
        true => caller.partner.as_deref().unwrap_or_default(),
        false => "",
    };
    let operation = match (method.as_str(), route.as_str()) {
        (_, "/maestro/v4/alerts/preview") => Some("preview"),
        ("POST", _) => Some("create"),
        ("PUT", _) => Some("update"),
        ("DELETE", _) => Some("withdraw"),
        _ => None,
    };
    if let Some(operation) = operation.filter(|_| route.starts_with("/maestro/v4/alerts")) {
        match code {
            Some(code) => app.metrics.alert_rejected(operation, code, metric_partner),
            None if response.status().is_success() => {
                app.metrics.alert_accepted(operation, metric_partner)
            }
            None => {}
        }
    }
    traces::set_attribute(&span, "http.response.status_code", i64::from(status));
    if status >= 500 {
        traces::set_error(&span, code.unwrap_or("server error"));
    }
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = telemetry::millis(elapsed),
            error_code = code,
            partner = caller.partner.as_deref(),
            "request finished"
        )
    });

    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        headers.insert(CORRELATION_HEADER, value);
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache, private"));
    let is_plain_json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"application/json"));
    if is_plain_json {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    }
    response
}
