//! External token issuers: the keys of the `MAESTRO_TRUSTED_JWKS` sources, found by `kid`, and
//! the claims a token verified by each source must carry.
//!
//! - A source given as `ISSUER=SOURCE` verifies only tokens whose `iss` is exactly `ISSUER`
//!   and, when `MAESTRO_TRUSTED_AUDIENCE` is set, whose `aud` holds it; a source without an
//!   issuer verifies tokens of any `iss`, as it always did, and start-up warns about it.
//! - A file is read once, at start-up. A URL is fetched at start-up (start-up fails, naming the
//!   URL, if that fetch does: a mistyped URL or a missing certificate authority is found when
//!   deploying rather than as 401s for every partner, and a rolling deployment stops at its
//!   first instance while the running ones, which keep the keys they have, go on serving). Then
//!   it is refreshed in the background (`run`), as its `Cache-Control` asks within bounds
//!   (`fetch::refresh_after`), and refetched when a token names a `kid` no source publishes,
//!   at most once per [`REFETCH_INTERVAL`] per source, whatever callers send.
//! - Verification stays synchronous: a token naming an unknown `kid` is refused at once (401)
//!   and the refetch it asked for runs in the background, so no request ever waits on an IdP
//!   and an IdP that hangs slows nothing but its own refresh. The cost is that the first
//!   tokens signed with a key the IdP published less than a minute before the last fetch are
//!   refused until the refetch lands; IdPs publish keys ahead of signing with them, and clients
//!   retry a 401.
//! - A failed refresh keeps the keys fetched before (logged as an error), and is tried again
//!   after a minute (`fetch::MIN_REFRESH`).
//! - A `kid` belongs to one source: at start-up a `kid` published twice stops start-up; later,
//!   a refreshed source publishing a `kid` another source holds has that key refused (logged as
//!   an error) and its other keys served. (A server key is found before any external one, so no
//!   source can shadow it.)
//! - Each key is pinned to one algorithm (RS256, ES256 on P-256, EdDSA on Ed25519); other keys
//!   are ignored with a warning.

mod fetch;
mod keys;
mod refresh;
mod source;

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::Jwk};
use time::OffsetDateTime;
use tokio::sync::Notify;

pub use source::{Location, TrustedSource};

use crate::clock::Clock;

/// The least time between two fetches of one source that tokens naming unknown keys can cause.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// A key of an external source, pinned to its algorithm, with its source's rules.
pub struct ExternalKey {
    kid: String,
    algorithm: Algorithm,
    key: DecodingKey,
    /// As published: a refresh that publishes the same key keeps this very `ExternalKey`, so
    /// tokens it verified stay remembered (see `Issuers::is_current`).
    jwk: Jwk,
    source: usize,
    issuer: Option<Arc<str>>,
    audience: Option<Arc<str>>,
}

impl ExternalKey {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    /// Adds the key's source's rules to `validation`: the issuer (`iss` exactly, and required),
    /// and the trusted audience (`aud`, a string or an array, required to hold it).
    pub fn restrict(&self, validation: &mut Validation) {
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        if let Some(audience) = &self.audience {
            validation.set_audience(&[audience]);
            validation.validate_aud = true;
            validation.required_spec_claims.insert("aud".into());
        }
    }
}

/// How many fetches of URL sources were decided on and how many have ended (either way), since
/// start-up (both count the start-up fetches).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fetches {
    pub requested: u64,
    pub completed: u64,
}

/// The external sources and their keys.
#[derive(Default)]
pub struct Issuers {
    sources: Vec<Source>,
    /// Every source's keys, by `kid`.
    keys: RwLock<HashMap<String, Arc<ExternalKey>>>,
    /// `None` when there is no URL source.
    client: Option<reqwest::Client>,
    /// What refetches and refreshes are timed by: the app's clock, which tests move forward
    /// instead of waiting a minute.
    clock: Arc<Clock>,
    /// Wakes `run` for a refetch.
    wake: Notify,
    requested: AtomicU64,
    completed: AtomicU64,
}

struct Source {
    described: TrustedSource,
    issuer: Option<Arc<str>>,
    audience: Option<Arc<str>>,
    schedule: Mutex<Schedule>,
}

#[derive(Default)]
struct Schedule {
    /// When the last fetch was decided on (what refetches are rate limited by).
    last_fetch: Option<OffsetDateTime>,
    /// When the source is due; `None` before its first fetch. While a fetch is under way, a
    /// minute after it began (see `Issuers::begin_fetch`).
    next_refresh: Option<OffsetDateTime>,
    refetch_asked: bool,
}

impl Issuers {
    /// Reads the files and fetches the URLs; fails, naming the source, if one cannot be read or
    /// fetched, or holds a key without a `kid` or a `kid` another key has.
    pub async fn load(
        sources: &[TrustedSource],
        audience: Option<&str>,
        extra_ca: Option<&Path>,
        clock: Arc<Clock>,
    ) -> anyhow::Result<Issuers> {
        let fetches_urls = sources
            .iter()
            .any(|s| matches!(s.location, Location::Url(_)));
        let client = fetches_urls.then(|| fetch::client(extra_ca)).transpose()?;
        let issuers = Issuers::new(sources, audience, client, clock);
        for (index, source) in sources.iter().enumerate() {
            if source.issuer.is_none() {
                tracing::warn!(%source, "tokens verified by this trusted JWKS source may carry any issuer (iss) and audience: write it ISSUER=SOURCE to pin one");
            }
            match &source.location {
                Location::File(path) => {
                    let document = std::fs::read(path).with_context(|| {
                        format!("reading the trusted JWKS file {}", path.display())
                    })?;
                    issuers.install(index, keys::document_keys(&document, source)?, true)?;
                }
                Location::Url(url) => {
                    let schedule = &issuers.sources[index].schedule;
                    issuers
                        .begin_fetch(&mut schedule.lock().expect("poisoned"), issuers.clock.now());
                    issuers
                        .fetch_and_install(index, url, true)
                        .await
                        .with_context(|| format!("fetching the trusted JWKS {url}"))?;
                }
            }
        }
        if audience.is_some() && sources.iter().all(|s| s.issuer.is_none()) {
            tracing::warn!(
                "MAESTRO_TRUSTED_AUDIENCE applies only to trusted JWKS sources written ISSUER=SOURCE, and there is none"
            );
        }
        Ok(issuers)
    }

    fn new(
        sources: &[TrustedSource],
        audience: Option<&str>,
        client: Option<reqwest::Client>,
        clock: Arc<Clock>,
    ) -> Issuers {
        let audience: Option<Arc<str>> = audience.map(Into::into);
        let sources = sources
            .iter()
            .map(|described| Source {
                issuer: described.issuer.as_deref().map(Into::into),
                // The audience is the issuer's promise that the token was meant for this
                // server; a source that accepts any issuer is not asked for it (SPEC §2).
                audience: described.issuer.as_ref().and(audience.clone()),
                described: described.clone(),
                schedule: Mutex::default(),
            })
            .collect();
        Issuers {
            sources,
            client,
            clock,
            ..Issuers::default()
        }
    }

    /// The key `kid` names. When no source publishes it, the URL sources are asked to refetch
    /// (each at most once per [`REFETCH_INTERVAL`]); the token at hand is refused meanwhile.
    pub fn key(&self, kid: &str) -> Option<Arc<ExternalKey>> {
        let key = self.current(kid);
        if key.is_none() {
            self.ask_refetch();
        }
        key
    }

    /// Whether `key` is still what its `kid` names: a token verified by a key its source has
    /// since withdrawn or changed must be verified afresh.
    pub fn is_current(&self, key: &Arc<ExternalKey>) -> bool {
        self.current(&key.kid)
            .is_some_and(|now| Arc::ptr_eq(&now, key))
    }

    /// Whether any source publishes `kid`.
    pub fn publishes(&self, kid: &str) -> bool {
        self.current(kid).is_some()
    }

    pub fn fetches(&self) -> Fetches {
        Fetches {
            requested: self.requested.load(Ordering::SeqCst),
            completed: self.completed.load(Ordering::SeqCst),
        }
    }

    fn current(&self, kid: &str) -> Option<Arc<ExternalKey>> {
        let keys = self.keys.read().expect("issuer keys lock poisoned");
        keys.get(kid).cloned()
    }
}

#[cfg(test)]
mod tests;
