//! Token verification.
//!
//! Each trusted key is pinned to one algorithm (RS256, ES256 or EdDSA) when it is loaded; a token
//! is checked with its key's algorithm only, so `alg: none`, HS256 and "HMAC keyed with the public
//! key" tokens can never verify. A token must name its key (`kid`), be signed by it, carry `exp`,
//! and be inside its `nbf`/`exp` window give or take [`LEEWAY_SECS`]. Keys of external issuers
//! come from [`Issuers`], with the `iss` and `aud` their source requires.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind, jwk::JwkSet};

use super::{
    Claims, Principal, TokenKind,
    issuers::{ExternalKey, Issuers},
    normalize_company_id,
    server_keys::{ServerKeys, Signer},
};
use crate::{
    error::{Error, Result},
    store::DynStore,
};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;

/// The longest id, scope or role a token may carry.
const MAX_CLAIM_CHARS: usize = 255;

pub(super) struct Verifier {
    pub(super) algorithm: Algorithm,
    pub(super) key: DecodingKey,
}

/// The keys this server trusts, and the one it signs with.
pub struct KeyRing {
    /// The server's own keys, reloaded by `refresh`.
    server: ServerKeys,
    /// The external issuers' keys (refreshed by `Issuers::run`).
    issuers: Arc<Issuers>,
    verified: VerifiedTokens,
}

impl KeyRing {
    /// Builds the ring from the server's keys and the external issuers, if any.
    pub fn new(server: ServerKeys, issuers: Option<Arc<Issuers>>) -> anyhow::Result<Self> {
        let issuers = issuers.unwrap_or_default();
        for kid in server.current().kids() {
            anyhow::ensure!(
                !issuers.publishes(kid),
                "key id {kid} appears twice among the trusted keys"
            );
        }
        Ok(KeyRing {
            server,
            issuers,
            verified: VerifiedTokens::default(),
        })
    }

    /// The external issuers' keys (refreshed by `Issuers::run`).
    pub fn issuers(&self) -> &Arc<Issuers> {
        &self.issuers
    }

    /// The server's own public keys (every key not retired), as published at `/oauth2/v0/jwks`.
    pub fn public_jwks(&self) -> Arc<JwkSet> {
        self.server.public_jwks()
    }

    /// Reloads the server's keys from the database: a rotated key signs from now on, and a
    /// retired one verifies no more (tokens it signed are forgotten by the cache too).
    pub async fn refresh(&self, store: &DynStore) -> anyhow::Result<()> {
        let records = store.signing_keys().await?;
        if self.server.update(&records)? {
            self.verified.clear();
        }
        Ok(())
    }

    /// The key that signs now.
    pub fn signer(&self) -> Arc<Signer> {
        self.server.signer()
    }

    /// Signs `claims` with the current key if the database already records it as signing until
    /// `claims.exp` or later; `None` if not. The half of [`super::signing::issue`] that needs
    /// no database, for callers that cannot wait (tests): mint tokens with `issue`.
    pub fn sign_recorded(&self, claims: &Claims) -> anyhow::Result<Option<String>> {
        let signer = self.signer();
        if !signer.covers(claims.exp) {
            return Ok(None);
        }
        signer.sign(claims).map(Some)
    }

    /// Verifies a bearer token and returns who it speaks for.
    ///
    /// A partner sends the same token with every request until it expires, and an RSA signature
    /// check costs more than the rest of a request; so a token that verified is remembered (by
    /// its whole text) until its `exp`, and later uses re-check only the time window and, for
    /// an external key, that its source still publishes that very key. Only a token that passed
    /// every check (its source's `iss` and `aud` included) is remembered.
    pub fn verify(&self, token: &str) -> Result<Principal> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some((principal, external)) = self.verified.get(token, now)
            && external.is_none_or(|key| self.issuers.is_current(&key))
        {
            return Ok(principal);
        }
        let (principal, window, external) = self.verify_uncached(token)?;
        self.verified
            .insert(token, principal.clone(), window, external);
        Ok(principal)
    }

    fn verify_uncached(
        &self,
        token: &str,
    ) -> Result<(Principal, Window, Option<Arc<ExternalKey>>)> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Error::unauthenticated("The bearer token is not a well-formed JWT."))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
        ) {
            return Err(Error::unauthenticated(
                "The token's algorithm is not accepted (RS256, ES256 or EdDSA only).",
            ));
        }
        // RFC 7515 §4.1.11: a token whose `crit` names an extension the recipient does not
        // understand must be refused, and maestro understands none.
        if header.crit.is_some() {
            return Err(Error::unauthenticated(
                "The token's header names critical extensions (crit) this server does not support.",
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| Error::unauthenticated("The token names no key (kid)."))?;
        // The server's keys first: no external source can shadow one.
        let server = self.server.current();
        let (external, own) = match server.verifier(&kid) {
            Some(own) => (None, Some(own)),
            None => {
                let key = self.issuers.key(&kid).ok_or_else(|| {
                    Error::unauthenticated("The token's key (kid) is not trusted.")
                })?;
                (Some(key), None)
            }
        };
        let (algorithm, key) = match (&external, own) {
            (Some(external), _) => (external.algorithm(), external.decoding_key()),
            (None, Some(own)) => (own.algorithm, &own.key),
            (None, None) => unreachable!("one of the two was found"),
        };
        if algorithm != header.alg {
            return Err(Error::unauthenticated(
                "The token's algorithm does not match its key.",
            ));
        }
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(external) = &external {
            external.restrict(&mut validation);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|err| {
                Error::unauthenticated(match err.kind() {
                    ErrorKind::ExpiredSignature => "The token has expired.",
                    ErrorKind::ImmatureSignature => "The token is not valid yet (nbf).",
                    ErrorKind::InvalidSignature => "The token's signature does not verify.",
                    ErrorKind::InvalidIssuer => {
                        "The token's issuer (iss) is not the one its key is trusted for."
                    }
                    ErrorKind::InvalidAudience => {
                        "The token's audience (aud) does not name this server."
                    }
                    ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => {
                        "The token names no issuer (iss), which its key requires."
                    }
                    ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => {
                        "The token names no audience (aud), which its key requires."
                    }
                    _ => "The token's claims are missing or malformed.",
                })
            })?
            .claims;
        let window = Window {
            not_before: claims.nbf,
            expires: claims.exp,
        };
        Ok((principal(claims)?, window, external))
    }
}

/// When a verified token may be used.
#[derive(Clone, Copy)]
struct Window {
    not_before: Option<i64>,
    expires: i64,
}

impl Window {
    fn contains(&self, now: i64) -> bool {
        let leeway = LEEWAY_SECS as i64;
        now < self.expires + leeway && self.not_before.is_none_or(|nbf| now >= nbf - leeway)
    }
}

/// Tokens whose signature verified, by their whole text, with the external key that verified
/// them. Bounded: when full it starts over.
#[derive(Default)]
struct VerifiedTokens {
    entries: RwLock<HashMap<Box<str>, Remembered>>,
}

type Remembered = (Principal, Window, Option<Arc<ExternalKey>>);

const VERIFIED_CAPACITY: usize = 4096;

impl VerifiedTokens {
    fn get(&self, token: &str, now: i64) -> Option<(Principal, Option<Arc<ExternalKey>>)> {
        let entries = self.entries.read().expect("token cache lock poisoned");
        let (principal, window, external) = entries.get(token)?;
        window
            .contains(now)
            .then(|| (principal.clone(), external.clone()))
    }

    fn clear(&self) {
        self.entries
            .write()
            .expect("token cache lock poisoned")
            .clear();
    }

    fn insert(
        &self,
        token: &str,
        principal: Principal,
        window: Window,
        external: Option<Arc<ExternalKey>>,
    ) {
        let mut entries = self.entries.write().expect("token cache lock poisoned");
        if entries.len() >= VERIFIED_CAPACITY {
            entries.clear();
        }
        entries.insert(token.into(), (principal, window, external));
    }
}

fn principal(claims: Claims) -> Result<Principal> {
    // The claims name companies, users and partners that queries look up: they follow the
    // rule every other input follows (crate::input), whoever issued the token.
    let texts = [&claims.sub]
        .into_iter()
        .chain(&claims.app_id)
        .chain(&claims.company)
        .chain(&claims.scopes)
        .chain(&claims.roles);
    for text in texts {
        if let Some(c) = crate::input::forbidden_char(text) {
            return Err(Error::unauthenticated(format!(
                "The token's claims hold {}, a character this server does not accept.",
                crate::input::text::code_point(c)
            )));
        }
        // Ids and names, as long as the fields of a body that carry them: longer ones could
        // not be stored (an index entry has a bounded size on PostgreSQL).
        if text.chars().count() > MAX_CLAIM_CHARS {
            return Err(Error::unauthenticated(format!(
                "The token's claims hold a value longer than {MAX_CLAIM_CHARS} characters."
            )));
        }
    }
    let company_id = match claims.kind {
        TokenKind::Company => Some(normalize_company_id(&claims.sub)),
        TokenKind::User => Some(normalize_company_id(claims.company.as_deref().ok_or_else(
            || Error::unauthenticated("A user token must carry concur.company."),
        )?)),
        TokenKind::App => None,
    };
    Ok(Principal {
        kind: claims.kind,
        subject: claims.sub,
        app_id: claims.app_id,
        company_id,
        scopes: claims.scopes,
        roles: claims.roles,
        accepted_until: claims.exp + LEEWAY_SECS as i64,
        issued_at: claims.iat,
        grant: claims.sid,
    })
}

#[cfg(test)]
mod tests;
