//! The OpenAPI 3.1 document of the JSON endpoints, and its page (`GET /docs`).
//!
//! The operations are declared beside their handlers (`#[utoipa::path]`), so the document and
//! the router come from the same declarations. What every operation shares is added here, once,
//! rather than repeated in eighteen annotations: the answers any request may get (a target or
//! headers too large, shed load, an internal error; a missing token where a scheme applies; a
//! body too large, too slow or of the wrong type where there is a body), a description on every
//! answer, the headers every answer carries (`concur-correlationid`; `WWW-Authenticate` on 401,
//! `Retry-After` on 429 and 503), the error codes as an enum, and `servers` from the public URL.

use serde_json::{Map, Value, json};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::error::ErrorCode;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "maestro",
        description = "Partner notification platform: the Maestro v4 alerts API, the App Center \
                       (company connections and the OAuth2 token endpoint), the user inbox, \
                       company events and operations. Errors follow one format, \
                       `{\"errors\": [{\"errorCode\", \"errorMessage\", \"details\"}]}` (the token \
                       endpoint answers OAuth2's), with the codes of docs/ERRORS.md."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "alerts", description = "Maestro v4 partner alerts"),
        (name = "inbox", description = "A user's alerts: the inbox, its marks and its live stream"),
        (name = "company events", description = "Internal producers of company events (legacy v1.0 notifications)"),
        (name = "admin", description = "Operators: deliveries of company notifications (maestro.admin)"),
        (name = "app center", description = "Company connections of partner apps, and the OAuth2 token endpoint"),
        (name = "operations", description = "Probes and the server's public keys")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_default()
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "A JWT from the token endpoint (POST /oauth2/v0/token), the host \
                             product's identity provider, or `maestro token issue`. The scopes an \
                             operation needs are listed in its security requirement.",
                        ))
                        .build(),
                ),
            );
    }
}

/// The document as served: the declared operations with what they all share, and `servers`.
pub fn document(declared: utoipa::openapi::OpenApi, public_url: &str) -> Value {
    let mut doc = serde_json::to_value(declared).expect("an OpenAPI document serialises");
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    doc["servers"] = json!([{ "url": public_url, "description": "this server" }]);
    let components = doc["components"]
        .as_object_mut()
        .expect("the document has components");
    components.insert("headers".into(), shared_headers());
    if let Some(item) = components
        .get_mut("schemas")
        .and_then(|schemas| schemas.get_mut("ErrorItem"))
    {
        item["properties"]["errorCode"]["enum"] = ErrorCode::ALL
            .iter()
            .map(|code| json!(code.as_str()))
            .collect();
    }
    let paths = doc["paths"]
        .as_object_mut()
        .expect("the document has paths");
    for (path, item) in paths.iter_mut() {
        for (_, operation) in item.as_object_mut().into_iter().flatten() {
            complete(path, operation);
        }
    }
    doc
}

fn shared_headers() -> Value {
    json!({
        "CorrelationId": {
            "description": "The request's correlation id: the caller's `concur-correlationid` \
                            when it sent a valid UUID, else a new UUID v4. Logged with every line \
                            about the request.",
            "required": true,
            "schema": { "type": "string", "format": "uuid" }
        },
        "RetryAfter": {
            "description": "Seconds to wait before retrying.",
            "required": true,
            "schema": { "type": "integer", "minimum": 1 }
        },
        "WwwAuthenticate": {
            "description": "The authentication scheme and, for a refused token, why \
                            (RFC 6750 §3).",
            "required": true,
            "schema": { "type": "string" }
        }
    })
}

/// The answers every operation may get, whether or not its handler ever builds them.
fn complete(path: &str, operation: &mut Value) {
    let secured = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|requirements| !requirements.is_empty());
    let has_body = operation.get("requestBody").is_some();
    let has_parameters = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|parameters| !parameters.is_empty());
    let oauth = path == "/oauth2/v0/token";
    let responses = operation["responses"]
        .as_object_mut()
        .expect("an operation has responses");
    let mut shared = vec!["414", "431", "500", "503"];
    if secured {
        shared.push("401");
    }
    if has_body {
        shared.extend(["408", "413", "415"]);
    }
    if has_body || has_parameters {
        shared.push("400");
    }
    for status in shared {
        responses
            .entry(status)
            .or_insert_with(|| json!({ "content": error_content(status, oauth) }));
    }
    for (status, response) in responses.iter_mut() {
        complete_response(status, response, oauth);
    }
}

/// Where an error answer comes from decides its shape: the token endpoint renders its own
/// errors the OAuth2 way, while the head limits and load shedding answer before any endpoint.
fn error_content(status: &str, oauth: bool) -> Value {
    let schema = match (oauth, status) {
        (true, "414" | "431") | (false, _) => json!({ "$ref": "#/components/schemas/ErrorBody" }),
        (true, "503") => json!({ "oneOf": [
            { "$ref": "#/components/schemas/ErrorBody" },
            { "$ref": "#/components/schemas/OAuthErrorBody" }
        ]}),
        (true, _) => json!({ "$ref": "#/components/schemas/OAuthErrorBody" }),
    };
    json!({ "application/json": { "schema": schema } })
}

fn complete_response(status: &str, response: &mut Value, oauth: bool) {
    let response = response.as_object_mut().expect("a response is an object");
    if response
        .get("description")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        response.insert("description".into(), json!(describe(status, oauth)));
    }
    let headers = response
        .entry("headers")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .expect("headers is an object");
    let mut reference = |name: &str, component: &str| {
        headers.insert(
            name.into(),
            json!({ "$ref": format!("#/components/headers/{component}") }),
        );
    };
    reference("concur-correlationid", "CorrelationId");
    match status {
        "401" => reference("WWW-Authenticate", "WwwAuthenticate"),
        "429" | "503" => reference("Retry-After", "RetryAfter"),
        _ => {}
    }
}

/// The description of an answer the declaration left without one.
fn describe(status: &str, oauth: bool) -> &'static str {
    match (status, oauth) {
        ("200", _) => "Done.",
        ("201", _) => "Created.",
        ("202", _) => "Accepted: recorded, the work follows.",
        ("204", _) => "Done; nothing to return.",
        ("400", true) => {
            "invalid_request, invalid_grant, unauthorized_client, unsupported_grant_type or \
             invalid_scope."
        }
        ("400", false) => {
            "The request is malformed: every problem is listed, each with a JSON Pointer \
             (`details.field`) or the parameter at fault (`details.parameter`)."
        }
        ("401", true) => "invalid_client: no client authentication, or it failed.",
        ("401", false) => {
            "No bearer token, or one that does not verify or was revoked (INVALID_TOKEN)."
        }
        ("403", _) => {
            "The token is valid but may not do this (INSUFFICIENT_SCOPE, ROLE_REQUIRED, \
             USER_TOKEN_REQUIRED, COMPANY_MISMATCH, APPLICATION_MISMATCH, UNKNOWN_PARTNER)."
        }
        ("404", _) => "Not found, or not the caller's.",
        ("408", _) => "The body did not arrive in time (REQUEST_TIMEOUT); nothing was done.",
        ("409", _) => "In conflict with what is stored.",
        ("413", _) => "The body is over the limit (PAYLOAD_TOO_LARGE).",
        ("414", _) => "The request target is over 8 KiB (URI_TOO_LONG).",
        ("415", _) => "The body is not sent with the content type this operation reads.",
        ("429", true) => "Too many failed client authentications (slow_down).",
        ("429", false) => "The partner is over its rate limit (RATE_LIMITED).",
        ("431", _) => "Too many header fields, or too many bytes of them (HEADERS_TOO_LARGE).",
        ("500", _) => "An internal error, logged with the correlation id (INTERNAL_ERROR).",
        ("503", _) => {
            "At capacity (load is shed, never queued) or the database is unreachable \
             (SERVICE_UNAVAILABLE)."
        }
        ("504", _) => {
            "The database did not answer in time; nothing was applied (UPSTREAM_TIMEOUT)."
        }
        _ => "See the error code in the body.",
    }
}
