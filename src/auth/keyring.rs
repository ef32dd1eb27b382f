//! Token verification.
//!
//! Each trusted key is pinned to one algorithm (RS256, ES256 or EdDSA) when it is loaded; a token
//! is checked with its key's algorithm only, so `alg: none`, HS256 and "HMAC keyed with the public
//! key" tokens can never verify. A token must name its key (`kid`), be signed by it, carry `exp`,
//! and be inside its `nbf`/`exp` window give or take [`LEEWAY_SECS`].

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, RwLock},
};

use anyhow::Context;
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};

use super::{
    Claims, Principal, TokenKind, normalize_company_id,
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
    /// The external issuers' keys.
    verifiers: HashMap<String, Verifier>,
    verified: VerifiedTokens,
    /// The server's own keys, reloaded by `refresh`.
    server: ServerKeys,
}

impl KeyRing {
    /// Builds the ring from the server's keys and an optional JWKS file of external issuers.
    pub fn new(server: ServerKeys, trusted_jwks: Option<&Path>) -> anyhow::Result<Self> {
        let server_kids: Vec<String> = server.current().kids().map(str::to_owned).collect();
        let mut verifiers = HashMap::new();
        if let Some(path) = trusted_jwks {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the trusted JWKS file {}", path.display()))?;
            let set: JwkSet = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a JWKS document", path.display()))?;
            for jwk in &set.keys {
                let Some((kid, verifier)) = external_verifier(jwk)? else {
                    continue;
                };
                anyhow::ensure!(
                    !verifiers.contains_key(&kid) && !server_kids.contains(&kid),
                    "key id {kid} appears twice among the trusted keys"
                );
                verifiers.insert(kid, verifier);
            }
        }
        Ok(KeyRing {
            verifiers,
            verified: VerifiedTokens::default(),
            server,
        })
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
    /// its whole text) until its `exp`, and later uses re-check only the time window.
    pub fn verify(&self, token: &str) -> Result<Principal> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some(principal) = self.verified.get(token, now) {
            return Ok(principal);
        }
        let (principal, window) = self.verify_uncached(token)?;
        self.verified.insert(token, principal.clone(), window);
        Ok(principal)
    }

    fn verify_uncached(&self, token: &str) -> Result<(Principal, Window)> {
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
        let server = self.server.current();
        let verifier = server
            .verifier(&kid)
            .or_else(|| self.verifiers.get(&kid))
            .ok_or_else(|| Error::unauthenticated("The token's key (kid) is not trusted."))?;
        if verifier.algorithm != header.alg {
            return Err(Error::unauthenticated(
                "The token's algorithm does not match its key.",
            ));
        }
        let mut validation = Validation::new(verifier.algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &verifier.key, &validation)
            .map_err(|err| {
                Error::unauthenticated(match err.kind() {
                    ErrorKind::ExpiredSignature => "The token has expired.",
                    ErrorKind::ImmatureSignature => "The token is not valid yet (nbf).",
                    ErrorKind::InvalidSignature => "The token's signature does not verify.",
                    _ => "The token's claims are missing or malformed.",
                })
            })?
            .claims;
        let window = Window {
            not_before: claims.nbf,
            expires: claims.exp,
        };
        Ok((principal(claims)?, window))
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

/// Tokens whose signature verified, by their whole text. Bounded: when full it starts over.
#[derive(Default)]
struct VerifiedTokens {
    entries: RwLock<HashMap<Box<str>, (Principal, Window)>>,
}

const VERIFIED_CAPACITY: usize = 4096;

impl VerifiedTokens {
    fn get(&self, token: &str, now: i64) -> Option<Principal> {
        let entries = self.entries.read().expect("token cache lock poisoned");
        let (principal, window) = entries.get(token)?;
        window.contains(now).then(|| principal.clone())
    }

    fn clear(&self) {
        self.entries
            .write()
            .expect("token cache lock poisoned")
            .clear();
    }

    fn insert(&self, token: &str, principal: Principal, window: Window) {
        let mut entries = self.entries.write().expect("token cache lock poisoned");
        if entries.len() >= VERIFIED_CAPACITY {
            entries.clear();
        }
        entries.insert(token.into(), (principal, window));
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
    })
}

/// The algorithm an external key is pinned to, or `None` (with a warning) for keys maestro
/// will not accept tokens from: symmetric keys, encryption keys, other algorithms or curves.
fn external_verifier(jwk: &Jwk) -> anyhow::Result<Option<(String, Verifier)>> {
    let kid = jwk
        .common
        .key_id
        .clone()
        .context("every trusted key needs a kid")?;
    let inferred = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        _ => None,
    };
    let declared = match jwk.common.key_algorithm {
        None => inferred,
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        Some(_) => None,
    };
    let usable = matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    match (declared, inferred) {
        (Some(algorithm), Some(family)) if algorithm == family && usable => Ok(Some((
            kid,
            Verifier {
                algorithm,
                key: DecodingKey::from_jwk(jwk)?,
            },
        ))),
        _ => {
            tracing::warn!(%kid, "ignoring a trusted key: only RS256, ES256 (P-256) and EdDSA (Ed25519) signing keys are accepted");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests;
