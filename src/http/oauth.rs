//! The OAuth2 token endpoint (SPEC §2.1, RFC 6749): `POST /oauth2/v0/token`, a form-encoded
//! request, the client authenticated by HTTP Basic or by form fields. The domain error is
//! rendered the OAuth way here: `{"code", "error", "error_description"}`, never cached.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    Json,
    extract::{ConnectInfo, FromRequest, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{receive, require_media_type};
use crate::{
    App,
    apps::{GrantRequest, Issued},
    error::{Error, ErrorCode},
    input::forbidden_char,
};

/// The largest token request read (a few parameters).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// A domain error on the OAuth surface.
pub struct OAuthError(pub Error);

impl From<Error> for OAuthError {
    fn from(error: Error) -> Self {
        OAuthError(error)
    }
}

impl OAuthError {
    /// The RFC 6749 §5.2 error name (RFC 8628's `slow_down` for the throttle) and the status.
    fn name_and_status(code: ErrorCode) -> (&'static str, StatusCode) {
        match code {
            ErrorCode::InvalidClient => ("invalid_client", StatusCode::UNAUTHORIZED),
            ErrorCode::InvalidGrant => ("invalid_grant", StatusCode::BAD_REQUEST),
            ErrorCode::UnauthorizedClient => ("unauthorized_client", StatusCode::BAD_REQUEST),
            ErrorCode::UnsupportedGrantType => ("unsupported_grant_type", StatusCode::BAD_REQUEST),
            ErrorCode::InvalidScope => ("invalid_scope", StatusCode::BAD_REQUEST),
            ErrorCode::RateLimited => ("slow_down", StatusCode::TOO_MANY_REQUESTS),
            ErrorCode::InternalError => ("server_error", StatusCode::INTERNAL_SERVER_ERROR),
            ErrorCode::ServiceUnavailable | ErrorCode::UpstreamTimeout => {
                ("temporarily_unavailable", StatusCode::SERVICE_UNAVAILABLE)
            }
            _ => ("invalid_request", StatusCode::BAD_REQUEST),
        }
    }
}

/// `{"code", "error", "error_description"}`.
#[derive(Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// The HTTP status, repeated.
    pub code: u16,
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`; `slow_down` when throttled.
    pub error: &'static str,
    pub error_description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        if let Error::Internal(err) = &self.0 {
            tracing::error!(error = format!("{err:#}"), "internal error");
        }
        let code = self.0.code();
        let (error, status) = Self::name_and_status(code);
        let description = self
            .0
            .problems()
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let body = OAuthErrorBody {
            code: status.as_u16(),
            error,
            error_description: description,
        };
        let mut response = (status, no_store(), Json(body)).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="maestro""#),
            );
        }
        match &self.0 {
            Error::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(1));
            }
            _ => {}
        }
        // The envelope middleware reads the code to count rejections by it.
        response.extensions_mut().insert(code);
        response
    }
}

/// Token answers and errors are never cached (RFC 6749 §5.1).
fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

/// A token request (the form's parameters and the client's HTTP Basic credentials), and the
/// address it came from.
pub struct TokenForm(pub GrantRequest, pub Option<IpAddr>);

impl FromRequest<Arc<App>> for TokenForm {
    type Rejection = OAuthError;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Self, OAuthError> {
        let basic = basic_credentials(request.headers())?;
        let address = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        require_media_type(&request, "application/x-www-form-urlencoded")?;
        let bytes = receive(request, app, MAX_FORM_BYTES).await?;
        let params: Vec<(String, String)> = url::form_urlencoded::parse(&bytes)
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        if let Some((name, _)) = params.iter().find(|(name, value)| {
            forbidden_char(name)
                .or_else(|| forbidden_char(value))
                .is_some()
        }) {
            return Err(OAuthError(Error::new(
                ErrorCode::InvalidField,
                format!("The parameter {name:?} holds a character this server does not accept."),
            )));
        }
        Ok(TokenForm(
            GrantRequest::from_params(&params, basic)?,
            address,
        ))
    }
}

/// `Authorization: Basic` credentials: base64 of the form-encoded id and secret joined by `:`
/// (RFC 6749 §2.3.1). Another scheme is refused: the endpoint knows only this one.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let refused = || {
        OAuthError(Error::new(
            ErrorCode::InvalidClient,
            "The Authorization header must be HTTP Basic with the client's id and secret.",
        ))
    };
    let encoded = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Basic"))
        .map(|(_, encoded)| encoded.trim())
        .ok_or_else(refused)?;
    let decoded = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(refused)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(refused)?;
    let (id, secret) = (form_decode(id), form_decode(secret));
    if id.is_empty()
        || forbidden_char(&id)
            .or_else(|| forbidden_char(&secret))
            .is_some()
    {
        return Err(refused());
    }
    Ok(Some((id, secret)))
}

/// One form-encoded value decoded (`+` a space, `%XX` a byte): read as the value of a
/// one-parameter form, so that a stray `&` or `=` stays part of it.
fn form_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("v={}", text.replace('&', "%26")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// The token answer (SPEC §2.1).
#[derive(Serialize, ToSchema)]
pub struct TokenBody {
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds, as a string (the platform's format).
    pub expires_in: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the refresh token expires, in seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<i64>,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The server's public URL: where to send API calls with this token.
    pub geolocation: String,
    /// The company, on company tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[utoipa::path(
    operation_id = "requestToken",
    post, path = "/oauth2/v0/token", tag = "app center",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "grant_type=password&credtype=authtoken&username={companyId}&password={requestToken}, \
                       grant_type=refresh_token&refresh_token=…, or grant_type=client_credentials; \
                       optional scope; client_id and client_secret unless HTTP Basic is used"),
    responses(
        (status = 200, description = "Tokens (Cache-Control: no-store)", body = TokenBody),
        (status = 400, description = "invalid_request, invalid_grant, unauthorized_client, unsupported_grant_type, invalid_scope", body = OAuthErrorBody),
        (status = 401, description = "invalid_client (WWW-Authenticate: Basic)", body = OAuthErrorBody),
        (status = 429, description = "Too many failed client authentications (Retry-After)", body = OAuthErrorBody),
    )
)]
pub async fn token(
    State(app): State<Arc<App>>,
    TokenForm(request, address): TokenForm,
) -> Result<Response, OAuthError> {
    let issued: Issued = app.grants.grant(&app.keyring, &request, address).await?;
    let body = TokenBody {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in.as_secs().to_string(),
        refresh_expires_in: issued
            .refresh
            .as_ref()
            .map(|(_, expires)| expires.unix_timestamp()),
        refresh_token: issued.refresh.map(|(token, _)| token),
        scope: issued.scopes.join(" "),
        geolocation: app.settings.public_url.clone(),
        id: issued.company_id,
    };
    Ok((no_store(), Json(body)).into_response())
}
