//! One postback: the request (signed, with the attempt's trace context), and how it ended.

use std::time::Duration;

use time::OffsetDateTime;
use tracing::Span;
use url::Url;

use super::DeliveryWorker;
use crate::{
    notifications::{document, egress, retry::parse_retry_after, signature},
    store::ClaimedDelivery,
    telemetry::traces,
};

/// The start of a partner's answer kept with an attempt.
const RESPONSE_EXCERPT_BYTES: usize = 1024;

/// How a request ended, before the verdict.
pub(super) enum Sent {
    Answered {
        status: u16,
        retry_after: Option<Duration>,
        excerpt: String,
    },
    /// No answer: timeout or connection trouble, worth retrying.
    Unreachable(String),
    /// Can never work as configured: no or unusable URL or secret, refused address.
    Impossible(String),
}

impl DeliveryWorker {
    pub(super) async fn send(&self, delivery: &ClaimedDelivery, span: &Span) -> Sent {
        let Some(url) = delivery.postback_url.as_deref() else {
            return Sent::Impossible("the partner has no postback URL".to_owned());
        };
        let Ok(url) = Url::parse(url) else {
            return Sent::Impossible("the partner's postback URL does not parse".to_owned());
        };
        if let Some(refused) = self.refused_literal(&url) {
            return Sent::Impossible(refused.to_string());
        }
        let target = document::postback_target(&url, &delivery.partner_id, &delivery.event);
        let body = document::notification(&self.config.public_url, &delivery.event);
        // The wall clock, not the app's: partners check it against theirs.
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        // The new secret first; the previous one while its grace period lasts.
        let secrets: Vec<&str> = std::iter::once(delivery.postback_secret.as_str())
            .chain(delivery.previous_postback_secret.as_deref())
            .collect();
        let signed =
            match signature::sign_with_each(&secrets, &delivery.id, timestamp, body.as_bytes()) {
                Ok(signed) => signed,
                Err(err) => return Sent::Impossible(err.to_string()),
            };
        if let Some(host) = target.host_str().filter(|_| traces::enabled()) {
            traces::set_attribute(span, "http.request.method", "POST");
            traces::set_attribute(span, "server.address", host.to_owned());
        }
        let mut context = reqwest::header::HeaderMap::new();
        traces::inject(span, &mut context);
        let request = self
            .client
            .post(target)
            .headers(context)
            .header(reqwest::header::CONTENT_TYPE, "application/xml")
            .header("webhook-id", signed.id)
            .header("webhook-timestamp", signed.timestamp)
            .header("webhook-signature", signed.signature)
            .body(body);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| parse_retry_after(value, timestamp));
                Sent::Answered {
                    status,
                    retry_after,
                    excerpt: excerpt(response).await,
                }
            }
            Err(err) => match egress::refusal(&err) {
                Some(refused) => Sent::Impossible(refused.to_string()),
                None if err.is_timeout() => Sent::Unreachable(format!(
                    "no answer within {:?}",
                    self.config.request_timeout
                )),
                None => Sent::Unreachable(describe(&err)),
            },
        }
    }

    /// A URL naming an IP address directly is checked here: no resolver sees it.
    fn refused_literal(&self, url: &Url) -> Option<egress::Refused> {
        let address: std::net::IpAddr = match url.host()? {
            url::Host::Ipv4(v4) => v4.into(),
            url::Host::Ipv6(v6) => v6.into(),
            url::Host::Domain(_) => return None,
        };
        self.config
            .policy
            .check(&address.to_string(), address)
            .err()
    }
}

/// The start of the answer, without reading a large body to its end; a NUL (which PostgreSQL's
/// text refuses, and which would fail the batch of outcomes it is recorded with) is replaced.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < RESPONSE_EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(RESPONSE_EXCERPT_BYTES);
    String::from_utf8_lossy(&kept).replace('\0', "\u{FFFD}")
}

/// A transport error in a line, its causes included (reqwest's own text is terse).
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
