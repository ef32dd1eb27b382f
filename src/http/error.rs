//! The JSON rendering of the domain error (the Maestro error schema of SPEC §4).
//!
//! Internal errors are logged here, once, with the request's correlation id (from the span), and
//! answered with an opaque message.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, ErrorCode, Problem};

/// `{"errors": [...]}`: every problem of the request.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub errors: Vec<ErrorItem>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorItem {
    /// A code from the documented catalogue, e.g. `MISSING_FIELD`.
    pub error_code: &'static str,
    pub error_message: String,
    /// `field` (a JSON Pointer into the request body) and other facts, when there are any.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl From<Problem> for ErrorItem {
    fn from(problem: Problem) -> Self {
        ErrorItem {
            error_code: problem.code.as_str(),
            error_message: problem.message,
            details: problem.details,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(err) = &self {
            tracing::error!(error = format!("{err:#}"), "internal error");
        }
        let code = self.code();
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            errors: self.problems().into_iter().map(ErrorItem::from).collect(),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match (&self, code) {
            (_, ErrorCode::InvalidToken) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="maestro", error="invalid_token""#),
                );
            }
            (_, ErrorCode::InsufficientScope) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"Bearer realm="maestro", error="insufficient_scope""#,
                    ),
                );
            }
            (Error::RateLimited { retry_after_secs }, _) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            // Shed load or an unreachable database: worth another try, soon.
            (_, ErrorCode::ServiceUnavailable) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(1));
            }
            _ => {}
        }
        // The envelope middleware reads the code to count rejections by it.
        response.extensions_mut().insert(code);
        response
    }
}
