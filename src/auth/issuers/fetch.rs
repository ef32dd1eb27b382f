//! Fetching a JWKS document from an `https://` URL.
//!
//! The URLs come from the operator, not from callers, so they may name private addresses (an
//! IdP inside the network) and skip the deliveries' SSRF guard; what protects the server is
//! that a fetch is short (timeouts), small (a size limit), stays on https (no proxy from the
//! environment, redirects only to https URLs) and happens rarely (see `super`).

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use reqwest::{Client, header, redirect};
use url::Url;

/// How long one fetch may take, from connecting to the last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A JWKS document holds a few keys of a few hundred bytes each.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
const MAX_REDIRECTS: usize = 3;

/// When a source is refreshed: after the document's `Cache-Control: max-age`, within these
/// bounds (an IdP cannot make the server fetch more often than once a minute, nor keep a key
/// it withdrew trusted for more than an hour), or after [`DEFAULT_REFRESH`] without one.
pub const MIN_REFRESH: Duration = Duration::from_secs(60);
pub const MAX_REFRESH: Duration = Duration::from_secs(3600);
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(600);

/// The client for every URL source. `extra_ca`: PEM certificates trusted besides the system's
/// authorities (a private IdP's, or the tests' own).
pub fn client(extra_ca: Option<&Path>) -> anyhow::Result<Client> {
    crate::tls::install_crypto_provider();
    let mut builder = Client::builder()
        .https_only(true)
        .redirect(redirect::Policy::custom(|attempt| {
            if attempt.url().scheme() != "https" {
                attempt.error("a JWKS URL may redirect only to an https:// URL")
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }))
        // A proxy variable would send the keys' fetch, and so the server's trust, elsewhere.
        .no_proxy()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("maestro/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = extra_ca {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading the trusted JWKS CA file {}", path.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} holds no PEM certificates", path.display()))?;
        anyhow::ensure!(
            !certificates.is_empty(),
            "{} holds no PEM certificates",
            path.display()
        );
        builder = builder.tls_certs_merge(certificates);
    }
    Ok(builder.build()?)
}

/// A fetched document and how long it may be kept.
pub struct Fetched {
    pub body: Vec<u8>,
    pub refresh_after: Duration,
}

/// Fetches `url`: a 200 answer of at most [`MAX_DOCUMENT_BYTES`].
pub async fn fetch(client: &Client, url: &Url) -> anyhow::Result<Fetched> {
    let mut response = client
        .get(url.clone())
        .header(header::ACCEPT, "application/jwk-set+json, application/json")
        .send()
        .await?;
    if response.status() != reqwest::StatusCode::OK {
        bail!("the answer was {}, not 200", response.status());
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        bail!("the document is larger than {MAX_DOCUMENT_BYTES} bytes");
    }
    let refresh_after = refresh_after(
        response
            .headers()
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|value| value.to_str().ok()),
    );
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            bail!("the document is larger than {MAX_DOCUMENT_BYTES} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        body,
        refresh_after,
    })
}

/// The refresh interval the `Cache-Control` values ask for, within the bounds. `no-store`,
/// `no-cache` and `max-age=0` ask for the shortest.
pub fn refresh_after<'a>(cache_control: impl Iterator<Item = &'a str>) -> Duration {
    let mut asked = None;
    for directive in cache_control.flat_map(|value| value.split(',')) {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim().to_ascii_lowercase();
        let seconds = match name.as_str() {
            "no-store" | "no-cache" => Some(0),
            "max-age" => value.trim().trim_matches('"').parse::<u64>().ok(),
            _ => None,
        };
        if let Some(seconds) = seconds {
            // Of several, the most careful wins.
            asked = Some(asked.map_or(seconds, |before: u64| before.min(seconds)));
        }
    }
    asked.map_or(DEFAULT_REFRESH, |seconds| {
        Duration::from_secs(seconds).clamp(MIN_REFRESH, MAX_REFRESH)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(values: &[&str]) -> u64 {
        refresh_after(values.iter().copied()).as_secs()
    }

    #[test]
    fn max_age_is_honoured_within_a_minute_and_an_hour() {
        assert_eq!(after(&[]), 600, "no header: the default");
        assert_eq!(after(&["public"]), 600);
        assert_eq!(after(&["public, max-age=900"]), 900);
        assert_eq!(after(&["Max-Age=\"1200\", must-revalidate"]), 1200);
        assert_eq!(
            after(&["max-age=5"]),
            60,
            "not more often than once a minute"
        );
        assert_eq!(
            after(&["max-age=86400"]),
            3600,
            "not less often than hourly"
        );
        assert_eq!(after(&["max-age=0"]), 60);
        assert_eq!(after(&["no-store"]), 60);
        assert_eq!(after(&["max-age=900", "no-cache"]), 60);
        assert_eq!(
            after(&["max-age=soon"]),
            600,
            "an unreadable value is ignored"
        );
        assert_eq!(after(&["max-age=-5"]), 600);
    }
}
