//! The catalogue of error codes, each with the HTTP status every surface answers it with.
//! `docs/ERRORS.md` documents the same list, in the same order, and a test keeps the two equal.

use std::fmt;

/// Every error code maestro can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidJson,
    MissingField,
    InvalidField,
    SchemaViolation,
    UnknownTemplate,
    UrlNotAllowed,
    ExpiresInPast,
    ExtRefImmutable,
    TemplateRenderFailed,
    InvalidToken,
    InsufficientScope,
    CompanyMismatch,
    ApplicationMismatch,
    UnknownPartner,
    RoleRequired,
    UserTokenRequired,
    AlertNotFound,
    DeliveryNotFound,
    ObjectNotFound,
    RouteNotFound,
    MethodNotAllowed,
    AlertExists,
    AlertWithdrawn,
    DeliveryPending,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    ServiceUnavailable,
    UpstreamTimeout,
    InternalError,
    RequestTimeout,
    MalformedBody,
    TooManyErrors,
    UriTooLong,
    HeadersTooLarge,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    AppNotFound,
    AppNotConnectable,
}

impl ErrorCode {
    /// The whole catalogue, in the order `docs/ERRORS.md` lists it.
    pub const ALL: [ErrorCode; 42] = [
        ErrorCode::InvalidJson,
        ErrorCode::MalformedBody,
        ErrorCode::MissingField,
        ErrorCode::InvalidField,
        ErrorCode::SchemaViolation,
        ErrorCode::UnknownTemplate,
        ErrorCode::UrlNotAllowed,
        ErrorCode::ExpiresInPast,
        ErrorCode::ExtRefImmutable,
        ErrorCode::TemplateRenderFailed,
        ErrorCode::TooManyErrors,
        ErrorCode::InvalidGrant,
        ErrorCode::UnauthorizedClient,
        ErrorCode::UnsupportedGrantType,
        ErrorCode::InvalidScope,
        ErrorCode::InvalidToken,
        ErrorCode::InvalidClient,
        ErrorCode::InsufficientScope,
        ErrorCode::CompanyMismatch,
        ErrorCode::ApplicationMismatch,
        ErrorCode::UnknownPartner,
        ErrorCode::RoleRequired,
        ErrorCode::UserTokenRequired,
        ErrorCode::AlertNotFound,
        ErrorCode::DeliveryNotFound,
        ErrorCode::ObjectNotFound,
        ErrorCode::AppNotFound,
        ErrorCode::RouteNotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::AlertExists,
        ErrorCode::AlertWithdrawn,
        ErrorCode::DeliveryPending,
        ErrorCode::AppNotConnectable,
        ErrorCode::RequestTimeout,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UriTooLong,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::HeadersTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::ServiceUnavailable,
        ErrorCode::UpstreamTimeout,
        ErrorCode::InternalError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "INVALID_JSON",
            ErrorCode::MissingField => "MISSING_FIELD",
            ErrorCode::InvalidField => "INVALID_FIELD",
            ErrorCode::SchemaViolation => "SCHEMA_VIOLATION",
            ErrorCode::UnknownTemplate => "UNKNOWN_TEMPLATE",
            ErrorCode::UrlNotAllowed => "URL_NOT_ALLOWED",
            ErrorCode::ExpiresInPast => "EXPIRES_IN_PAST",
            ErrorCode::ExtRefImmutable => "EXTREF_IMMUTABLE",
            ErrorCode::TemplateRenderFailed => "TEMPLATE_RENDER_FAILED",
            ErrorCode::InvalidToken => "INVALID_TOKEN",
            ErrorCode::InsufficientScope => "INSUFFICIENT_SCOPE",
            ErrorCode::CompanyMismatch => "COMPANY_MISMATCH",
            ErrorCode::ApplicationMismatch => "APPLICATION_MISMATCH",
            ErrorCode::UnknownPartner => "UNKNOWN_PARTNER",
            ErrorCode::RoleRequired => "ROLE_REQUIRED",
            ErrorCode::UserTokenRequired => "USER_TOKEN_REQUIRED",
            ErrorCode::AlertNotFound => "ALERT_NOT_FOUND",
            ErrorCode::DeliveryNotFound => "DELIVERY_NOT_FOUND",
            ErrorCode::ObjectNotFound => "OBJECT_NOT_FOUND",
            ErrorCode::RouteNotFound => "ROUTE_NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::AlertExists => "ALERT_EXISTS",
            ErrorCode::AlertWithdrawn => "ALERT_WITHDRAWN",
            ErrorCode::DeliveryPending => "DELIVERY_PENDING",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::MalformedBody => "MALFORMED_BODY",
            ErrorCode::TooManyErrors => "TOO_MANY_ERRORS",
            ErrorCode::UriTooLong => "URI_TOO_LONG",
            ErrorCode::HeadersTooLarge => "HEADERS_TOO_LARGE",
            ErrorCode::InvalidClient => "INVALID_CLIENT",
            ErrorCode::InvalidGrant => "INVALID_GRANT",
            ErrorCode::UnauthorizedClient => "UNAUTHORIZED_CLIENT",
            ErrorCode::UnsupportedGrantType => "UNSUPPORTED_GRANT_TYPE",
            ErrorCode::InvalidScope => "INVALID_SCOPE",
            ErrorCode::AppNotFound => "APP_NOT_FOUND",
            ErrorCode::AppNotConnectable => "APP_NOT_CONNECTABLE",
        }
    }

    /// The HTTP status every surface answers this code with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson
            | ErrorCode::MissingField
            | ErrorCode::InvalidField
            | ErrorCode::SchemaViolation
            | ErrorCode::UnknownTemplate
            | ErrorCode::UrlNotAllowed
            | ErrorCode::ExpiresInPast
            | ErrorCode::ExtRefImmutable
            | ErrorCode::TemplateRenderFailed
            | ErrorCode::MalformedBody
            | ErrorCode::TooManyErrors
            | ErrorCode::InvalidGrant
            | ErrorCode::UnauthorizedClient
            | ErrorCode::UnsupportedGrantType
            | ErrorCode::InvalidScope => 400,
            ErrorCode::InvalidToken | ErrorCode::InvalidClient => 401,
            ErrorCode::InsufficientScope
            | ErrorCode::CompanyMismatch
            | ErrorCode::ApplicationMismatch
            | ErrorCode::UnknownPartner
            | ErrorCode::RoleRequired
            | ErrorCode::UserTokenRequired => 403,
            ErrorCode::AlertNotFound
            | ErrorCode::DeliveryNotFound
            | ErrorCode::ObjectNotFound
            | ErrorCode::AppNotFound
            | ErrorCode::RouteNotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::AlertExists
            | ErrorCode::AlertWithdrawn
            | ErrorCode::DeliveryPending
            | ErrorCode::AppNotConnectable => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UriTooLong => 414,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::RateLimited => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::ServiceUnavailable => 503,
            ErrorCode::UpstreamTimeout => 504,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
