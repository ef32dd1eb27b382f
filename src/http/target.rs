//! The request target under the input rule ([`crate::input`]): every path parameter and every
//! query parameter's name and value, percent-decoded, must be text maestro accepts. Checked
//! once for every route, before a handler or an extractor reads them, so that a `%00` in an id
//! or a cursor is the same 400 on SQLite and PostgreSQL (which cannot hold it in a query).

use axum::{
    extract::{FromRequestParts, RawPathParams, Request},
    http::request::Parts,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    error::{Error, ErrorCode, Problem},
    input::{forbidden_char, text},
};

/// The first problem of the request's path and query, if any.
pub async fn problem(parts: &mut Parts) -> Option<Problem> {
    let parameter = |name: &str, message: String| {
        Some(Problem::new(ErrorCode::InvalidField, message).with_detail("parameter", name))
    };
    match RawPathParams::from_request_parts(parts, &()).await {
        Ok(params) => {
            for (name, value) in &params {
                if let Some(c) = forbidden_char(value) {
                    return parameter(name, text::refusal(name, c));
                }
            }
        }
        Err(_) => {
            return parameter(
                "path",
                "The request path is not UTF-8 text once percent-decoded.".to_owned(),
            );
        }
    }
    let query = parts.uri.query().unwrap_or_default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if let Some(c) = forbidden_char(&name).or_else(|| forbidden_char(&value)) {
            // The name itself may be what is refused: it is not echoed then.
            let shown = if forbidden_char(&name).is_some() {
                "query"
            } else {
                &name
            };
            return parameter(shown, text::refusal(&format!("The parameter {shown}"), c));
        }
    }
    None
}

/// Middleware of the JSON surfaces: a refused target answers in the Maestro error format.
pub async fn refuse_hostile_target(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Some(problem) = problem(&mut parts).await {
        return Error::Rejected(vec![problem]).into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}
