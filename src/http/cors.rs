//! CORS for the inbox API (SPEC §5, "embedding"): the host product's web origins listed in
//! `MAESTRO_INBOX_ALLOWED_ORIGINS` may call `/maestro/v4/inbox…` from a browser with the bearer
//! `Authorization` header. Never `*`, never credentials: a cross-origin request carries no
//! cookie, so the inbox page's session is used by the page alone. Preflights are answered by the
//! layer; an origin not listed gets no CORS header, and its browser refuses the answer.
//!
//! tower-http's layer, on the inbox routes only (`gate`): the other surfaces are for servers,
//! not pages, and keep answering `OPTIONS` with 405.

use std::time::Duration;

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The inbox API's paths.
const INBOX_API: &str = "/maestro/v4/inbox";

/// Middleware: the inbox API's requests go through `cors` (when origins are configured).
pub async fn gate(State(cors): State<Option<CorsLayer>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let inbox = path == INBOX_API || path.starts_with("/maestro/v4/inbox/");
    match cors {
        Some(cors) if inbox => match cors.layer(next).oneshot(request).await {
            Ok(response) => response.into_response(),
            Err(never) => match never {},
        },
        _ => next.run(request).await,
    }
}

/// The layer for `origins` (as [`parse_origin`] wrote them); `None` when none is allowed.
pub fn inbox_cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .map(|origin| HeaderValue::from_str(origin).expect("parse_origin wrote a header value"))
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([
                HeaderName::from_static("concur-correlationid"),
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
            ])
            .allow_credentials(false)
            // Browsers cap it lower anyway (Chromium: 2 h).
            .max_age(Duration::from_secs(3600)),
    )
}

/// A web origin as a browser sends it: `https://host[:port]` (or `http://`), nothing after.
/// `*` and anything with a path, query, fragment or credentials are refused, so that a typo
/// cannot open the API wider than meant.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let text = text.trim();
    let refuse = |why: &str| {
        Err(format!(
            "{text:?} is not a web origin ({why}); write https://host[:port]"
        ))
    };
    if text == "*" {
        return refuse("any origin is never allowed");
    }
    let Ok(url) = url::Url::parse(text) else {
        return refuse("not a URL");
    };
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return refuse("http or https, with a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("no credentials");
    }
    if url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
        return refuse("no path, query or fragment");
    }
    // As a browser writes it in `Origin`: lower case, the scheme's default port left out.
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        assert_eq!(
            parse_origin("https://app.example.com").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            parse_origin("http://localhost:3000/").unwrap(),
            "http://localhost:3000"
        );
        assert_eq!(
            parse_origin("HTTPS://App.Example.com:443").unwrap(),
            "https://app.example.com"
        );
        for refused in [
            "*",
            "app.example.com",
            "https://app.example.com/inbox",
            "https://app.example.com?x=1",
            "https://user@app.example.com",
            "ftp://app.example.com",
            "null",
        ] {
            assert!(parse_origin(refused).is_err(), "{refused}");
        }
    }
}
