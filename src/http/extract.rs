//! Request extractors: the verified caller, the user of an inbox, and a JSON body read under the
//! size limit.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{Method, header, request::Parts},
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    App,
    auth::Principal,
    error::{Error, ErrorCode},
    inbox::{InboxService, login},
    store::InboxOwner,
};

/// The caller, proven by `Authorization: Bearer <JWT>`.
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        let token = bearer_token(parts, &["Bearer"])?;
        Ok(Caller(app.keyring.verify(token)?))
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

/// A JSON document body: `application/json`, at most `max_body_bytes`, parsed once (into a
/// `Value`, or a type that reads the document its own way, such as an alert's body).
pub struct JsonBody<T = Value>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Self, Error> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(Error::new(
                ErrorCode::UnsupportedMediaType,
                "The body must be sent as Content-Type: application/json.",
            ));
        }
        let limit = app.settings.max_body_bytes;
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
        let bytes: Bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|_| too_large())?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|err| {
            Error::new(
                ErrorCode::InvalidJson,
                format!(
                    "The body is not valid JSON: {} at line {}, column {}.",
                    match err.classify() {
                        serde_json::error::Category::Eof => "unexpected end of input",
                        _ => "syntax error",
                    },
                    err.line(),
                    err.column()
                ),
            )
        })
    }
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
        let principal = if parts.headers.contains_key(header::AUTHORIZATION) {
            app.keyring.verify(bearer_token(parts, &["Bearer"])?)?
        } else if let Some(token) = cookie(parts, login::COOKIE) {
            let (name, expected) = INBOX_REQUEST_HEADER;
            let marked = parts
                .headers
                .get(name)
                .is_some_and(|value| value.as_bytes() == expected.as_bytes());
            if parts.method != Method::GET && !marked {
                return Err(Error::unauthenticated(
                    "A change made with the inbox cookie needs the X-Requested-With: maestro-inbox header.",
                ));
            }
            app.keyring.verify(token)?
        } else {
            return Err(Error::unauthenticated(
                "An Authorization: Bearer user token (or the inbox page's sign-in cookie) is required.",
            ));
        };
        Ok(InboxUser(InboxService::owner(&principal)?))
    }
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
