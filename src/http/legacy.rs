//! The legacy company notification API (v1.0, XML): subscribe and unsubscribe, and the trip and
//! travel profile documents a notification's ObjectURI names.
//!
//! The domain error is the same as everywhere; only its rendering differs:
//! `<Error><Message/><Server-Time/><Id/></Error>` as `application/xml`, the `Id` being the
//! request's correlation id so that support can find the log lines.

use std::sync::Arc;

use axum::{
    extract::{FromRequestParts, Path, RawQuery, Request, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use quick_xml::Writer;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{envelope::CorrelationId, extract::bearer_token};
use crate::{App, auth::Principal, error::Error, input::xml_text};

/// A domain error on the XML surface.
pub struct XmlError {
    error: Error,
    correlation_id: String,
}

impl XmlError {
    fn new(error: Error, parts: &Parts) -> Self {
        XmlError {
            error,
            correlation_id: correlation_id(parts),
        }
    }
}

fn correlation_id(parts: &Parts) -> String {
    parts
        .extensions
        .get::<CorrelationId>()
        .map(|id| id.0.clone())
        .unwrap_or_default()
}

impl IntoResponse for XmlError {
    fn into_response(self) -> Response {
        if let Error::Internal(err) = &self.error {
            tracing::error!(error = format!("{err:#}"), "internal error");
        }
        let code = self.error.code();
        let status = StatusCode::from_u16(self.error.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = self
            .error
            .problems()
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let body = error_document(&message, OffsetDateTime::now_utc(), &self.correlation_id);
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"OAuth realm="maestro""#),
            );
        }
        response.extensions_mut().insert(code);
        response
    }
}

/// The legacy error document, escaped by quick-xml.
pub fn error_document(message: &str, at: OffsetDateTime, id: &str) -> String {
    let mut writer = Writer::new(Vec::new());
    let server_time = at
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default();
    writer
        .create_element("Error")
        .write_inner_content(|w| {
            w.create_element("Message")
                .write_text_content(xml_text(message))?;
            w.create_element("Server-Time")
                .write_text_content(xml_text(&server_time))?;
            w.create_element("Id").write_text_content(xml_text(id))?;
            Ok(())
        })
        .expect("writing to memory cannot fail");
    let mut document = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    document.push_str(&String::from_utf8(writer.into_inner()).expect("quick-xml writes UTF-8"));
    document
}

/// The caller, proven by `Authorization: OAuth <token>` (or `Bearer`), refused in XML.
pub struct LegacyCaller(pub Principal);

impl FromRequestParts<Arc<App>> for LegacyCaller {
    type Rejection = XmlError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, XmlError> {
        let token =
            bearer_token(parts, &["OAuth", "Bearer"]).map_err(|e| XmlError::new(e, parts))?;
        let principal = super::envelope::authenticate(app, parts, token)
            .map_err(|e| XmlError::new(e, parts))?;
        Ok(LegacyCaller(principal))
    }
}

/// Middleware of the XML surface: a refused request target (see [`super::target`]) answers
/// with the legacy error document.
pub async fn refuse_hostile_target(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Some(problem) = super::target::problem(&mut parts).await {
        return XmlError::new(Error::Rejected(vec![problem]), &parts).into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// A query parameter, as given.
fn query_parameter(query: Option<&str>, wanted: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == wanted)
        .map(|(_, value)| value.into_owned())
}

/// `POST /api/company/v1.0/subscribe?type=itinerary|profile|fop`: 200 with an empty body.
pub async fn subscribe(
    State(app): State<Arc<App>>,
    correlation: axum::Extension<CorrelationId>,
    RawQuery(query): RawQuery,
    LegacyCaller(caller): LegacyCaller,
) -> Result<StatusCode, XmlError> {
    let object_type = query_parameter(query.as_deref(), "type");
    let done = app
        .subscriptions
        .subscribe(&caller, object_type.as_deref())
        .await;
    answer(done, correlation)
}

/// `POST /api/company/v1.0/unsubscribe?type=…`: 200 with an empty body, also when there was
/// no subscription.
pub async fn unsubscribe(
    State(app): State<Arc<App>>,
    correlation: axum::Extension<CorrelationId>,
    RawQuery(query): RawQuery,
    LegacyCaller(caller): LegacyCaller,
) -> Result<StatusCode, XmlError> {
    let object_type = query_parameter(query.as_deref(), "type");
    let done = app
        .subscriptions
        .unsubscribe(&caller, object_type.as_deref())
        .await;
    answer(done, correlation)
}

/// `GET /api/travel/trip/v1.1/{tripId}`: the latest stored snapshot of the trip, as XML.
pub async fn trip(
    State(app): State<Arc<App>>,
    correlation: axum::Extension<CorrelationId>,
    Path(trip_id): Path<String>,
    LegacyCaller(caller): LegacyCaller,
) -> Result<Response, XmlError> {
    xml_document(app.objects.trip(&caller, &trip_id).await, correlation)
}

/// `GET /api/travelprofile/v2.0/profile?userid_type=login&userid_value=…`.
pub async fn profile(
    State(app): State<Arc<App>>,
    correlation: axum::Extension<CorrelationId>,
    RawQuery(query): RawQuery,
    LegacyCaller(caller): LegacyCaller,
) -> Result<Response, XmlError> {
    let parameter = |name| query_parameter(query.as_deref(), name);
    let document = app
        .objects
        .profile(
            &caller,
            parameter("userid_type").as_deref(),
            parameter("userid_value").as_deref(),
        )
        .await;
    xml_document(document, correlation)
}

fn xml_document(
    document: Result<String, Error>,
    correlation: axum::Extension<CorrelationId>,
) -> Result<Response, XmlError> {
    match document {
        Ok(xml) => Ok(([(header::CONTENT_TYPE, "application/xml")], xml).into_response()),
        Err(error) => Err(XmlError {
            error,
            correlation_id: correlation.0.0,
        }),
    }
}

/// 200 with an empty body, or the error in XML.
fn answer(
    done: Result<(), Error>,
    correlation: axum::Extension<CorrelationId>,
) -> Result<StatusCode, XmlError> {
    done.map(|()| StatusCode::OK).map_err(|error| XmlError {
        error,
        correlation_id: correlation.0.0,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_error_document_is_exactly_the_legacy_shape_and_escapes_text() {
        let document = error_document(
            "Bad <type> & more",
            datetime!(2026-11-22 13:45:07.123 UTC),
            "5512c7be-3fab-4d65-ae69-8a74a04a0c7f",
        );
        assert_eq!(
            document,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Message>Bad &lt;type&gt; &amp; more\
             </Message><Server-Time>2026-11-22T13:45:07Z</Server-Time>\
             <Id>5512c7be-3fab-4d65-ae69-8a74a04a0c7f</Id></Error>"
        );
    }

    #[test]
    fn the_type_parameter_is_read_from_the_query() {
        assert_eq!(
            query_parameter(Some("type=Itinerary"), "type").as_deref(),
            Some("Itinerary")
        );
        assert_eq!(
            query_parameter(Some("a=1&type=fop"), "type").as_deref(),
            Some("fop")
        );
        assert_eq!(query_parameter(Some("kind=fop"), "type"), None);
        assert_eq!(query_parameter(None, "type"), None);
    }
}
