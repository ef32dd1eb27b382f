//! Request extractors: the verified caller, the user of an inbox, and a JSON body read under the
//! size limit.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Query, Request},
    http::{Method, header, request::Parts},
};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::envelope::{Admission, CallerNote, authenticate};
use crate::{
    App,
    alerts::{PartnerCaller, Submitter},
    auth::Principal,
    error::{Error, ErrorCode},
    inbox::{InboxService, login},
    input::JsonDocument,
    store::InboxOwner,
};

/// The caller, proven by `Authorization: Bearer <JWT>`.
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        let token = bearer_token(parts, &["Bearer"])?;
        Ok(Caller(authenticate(app, parts, token)?))
    }
}

/// A caller cleared to submit alerts (scope, partner, rate limit), decided from the token
/// before the body is read: a caller without the right never gets to send one.
pub struct AlertSubmitter(pub Submitter);

impl FromRequestParts<Arc<App>> for AlertSubmitter {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        let Caller(principal) = Caller::from_request_parts(parts, app).await?;
        let caller = app.alerts.identify(principal).await?;
        CallerNote::partner_registered(parts);
        Ok(AlertSubmitter(caller.admit()?))
    }
}

/// A caller acting for a registered partner with the alerts scope, for reads of the partner's
/// side (its templates): decided from the token, without taking from the rate limit.
pub struct PartnerReader(pub PartnerCaller);

impl FromRequestParts<Arc<App>> for PartnerReader {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        let Caller(principal) = Caller::from_request_parts(parts, app).await?;
        let caller = app.alerts.identify(principal).await?;
        CallerNote::partner_registered(parts);
        Ok(PartnerReader(caller))
    }
}

/// A producer of company events (an app token with `maestro.events.publish`), decided before
/// the body is read.
pub struct EventPublisher(pub Principal);

impl FromRequestParts<Arc<App>> for EventPublisher {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        let Caller(principal) = Caller::from_request_parts(parts, app).await?;
        crate::notifications::events::authorize(&principal)?;
        Ok(EventPublisher(principal))
    }
}

/// The token of an `Authorization` header using one of `schemes` (case-insensitive).
pub fn bearer_token<'a>(parts: &'a Parts, schemes: &[&str]) -> Result<&'a str, Error> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Error::unauthenticated("An Authorization: Bearer token is required."))?
        .to_str()
        .map_err(|_| Error::unauthenticated("The Authorization header is not readable."))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        Error::unauthenticated("The Authorization header must be 'Bearer <token>'.")
    })?;
    if !schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) || token.trim().is_empty() {
        return Err(Error::unauthenticated(
            "The Authorization header must be 'Bearer <token>'.",
        ));
    }
    Ok(token.trim())
}

/// A JSON document body: `application/json`, at most `max_body_bytes`, read strictly once (into
/// a `Value`, or a type that reads the document its own way, such as an alert's body).
pub struct JsonBody<T = Value>(pub T);

impl<T: JsonDocument> FromRequest<Arc<App>> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Self, Error> {
        require_media_type(&request, "application/json")?;
        let bytes = receive(request, app, app.settings.max_body_bytes).await?;
        crate::input::read_json(&bytes).map(JsonBody)
    }
}

/// 415 unless the body is declared as `media` (parameters such as a charset are fine).
pub fn require_media_type(request: &Request, media: &str) -> Result<(), Error> {
    let declared = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|declared| declared.trim().eq_ignore_ascii_case(media));
    if declared {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::UnsupportedMediaType,
        format!("The body must be sent as Content-Type: {media}."),
    ))
}

/// The request's whole body, at most `limit` bytes (413 beyond, checked on `Content-Length`
/// first), before the request's deadline (408). No work permit is held while it arrives (see
/// `Admission`); the work after needs one, so it is taken again (503 when none is left).
pub async fn receive(request: Request, app: &App, limit: usize) -> Result<Bytes, Error> {
    let too_large = || {
        Error::Rejected(vec![
            crate::Problem::new(
                ErrorCode::PayloadTooLarge,
                format!("The body is larger than the limit of {limit} bytes."),
            )
            .with_detail("limitBytes", limit),
        ])
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let admission = request.extensions().get::<Admission>().cloned();
    if let Some(admission) = &admission {
        admission.release();
    }
    let receiving = app.metrics.receiving_body();
    let bytes = read_body(request.into_body(), limit, too_large).await?;
    drop(receiving);
    if let Some(admission) = &admission {
        admission.admit()?;
    }
    Ok(bytes)
}

/// Query parameters read into `T`; a value that does not fit is a 400 in the error format of
/// the JSON surfaces (axum's own rejection is plain text).
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(params)) => Ok(QueryParams(params)),
            Err(rejection) => Err(Error::Rejected(vec![
                crate::Problem::new(
                    ErrorCode::InvalidField,
                    format!(
                        "The query parameters do not fit: {}.",
                        rejection.body_text()
                    ),
                )
                .with_detail("parameter", "query"),
            ])),
        }
    }
}

/// The whole body, at most `limit` bytes, before the request's deadline.
async fn read_body(
    body: axum::body::Body,
    limit: usize,
    too_large: impl FnOnce() -> Error,
) -> Result<Bytes, Error> {
    let failure = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => return Ok(collected.to_bytes()),
        Err(failure) => failure,
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(failure.as_ref());
    while let Some(err) = cause {
        if err.is::<http_body_util::LengthLimitError>() {
            return Err(too_large());
        }
        if err.is::<tower_http::timeout::TimeoutError>() {
            return Err(Error::new(
                ErrorCode::RequestTimeout,
                "The body did not arrive in time; nothing was done. Send it again.",
            ));
        }
        cause = err.source();
    }
    // What is left is the framing: hyper could not decode the body (a malformed chunk).
    Err(Error::new(
        ErrorCode::MalformedBody,
        "The body could not be read: its transfer encoding is malformed.",
    ))
}

/// The user of an inbox: a bearer user token, or the inbox page's session cookie.
///
/// The cookie is `SameSite=Strict`; on top of that, a change (any method but GET) made with the
/// cookie must carry `X-Requested-With: maestro-inbox`, which a page of another site cannot send
/// without a CORS preflight that this server never grants.
pub struct InboxUser(pub InboxOwner);

/// The header the inbox page sends with its changes.
pub const INBOX_REQUEST_HEADER: (&str, &str) = ("x-requested-with", "maestro-inbox");

impl FromRequestParts<Arc<App>> for InboxUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        Ok(InboxUser(
            InboxViewer::from_request_parts(parts, app).await?.owner,
        ))
    }
}

/// The user of an inbox and how long their credential lasts: a live stream ends with it.
pub struct InboxViewer {
    pub owner: InboxOwner,
    /// When the token or session stops being accepted (seconds since the Unix epoch).
    pub accepted_until: i64,
    /// The page's session cookie, when that is the credential (a stream re-checks it, so that
    /// a sign-out ends the streams it opened).
    pub session_cookie: Option<String>,
}

impl FromRequestParts<Arc<App>> for InboxViewer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let principal = authenticate(app, parts, bearer_token(parts, &["Bearer"])?)?;
            return Ok(InboxViewer {
                owner: InboxService::owner(&principal)?,
                accepted_until: principal.accepted_until,
                session_cookie: None,
            });
        }
        let Some(cookie) = cookie(parts, login::COOKIE) else {
            return Err(Error::unauthenticated(
                "An Authorization: Bearer user token (or the inbox page's sign-in cookie) is required.",
            ));
        };
        if parts.method != Method::GET && !marked_by_page(parts) {
            return Err(Error::unauthenticated(
                "A change made with the inbox cookie needs the X-Requested-With: maestro-inbox header.",
            ));
        }
        let session = login::session(&app.store, cookie, app.clock.now())
            .await?
            .ok_or_else(|| {
                Error::unauthenticated(
                    "The inbox session has ended; sign in again with a new link.",
                )
            })?;
        Ok(InboxViewer {
            owner: session.owner,
            accepted_until: session.expires_at.unix_timestamp(),
            session_cookie: Some(cookie.to_owned()),
        })
    }
}

/// True when the request carries the header the inbox page sends with its changes.
pub fn marked_by_page(parts: &Parts) -> bool {
    let (name, expected) = INBOX_REQUEST_HEADER;
    parts
        .headers
        .get(name)
        .is_some_and(|value| value.as_bytes() == expected.as_bytes())
}

/// The value of the cookie `name`, if the request carries it.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}
