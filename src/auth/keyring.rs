//! Token verification.
//!
//! Each trusted key is pinned to one algorithm (RS256, ES256 or EdDSA) when it is loaded; a token
//! is checked with its key's algorithm only, so `alg: none`, HS256 and "HMAC keyed with the public
//! key" tokens can never verify. A token must name its key (`kid`), be signed by it, carry `exp`,
//! and be inside its `nbf`/`exp` window give or take [`LEEWAY_SECS`].

use std::{collections::HashMap, path::Path};

use anyhow::Context;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};

use super::{Claims, Principal, TokenKind, normalize_company_id, signing::ServerKey};
use crate::error::{Error, Result};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;

struct Verifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The keys this server trusts, and the one it signs with.
pub struct KeyRing {
    verifiers: HashMap<String, Verifier>,
    signer: (String, EncodingKey),
    public_jwks: JwkSet,
}

impl KeyRing {
    /// Builds the ring from the server's keys (oldest first; the oldest signs) and an optional
    /// JWKS file of external issuers.
    pub fn new(server_keys: &[ServerKey], trusted_jwks: Option<&Path>) -> anyhow::Result<Self> {
        let signer = server_keys
            .first()
            .context("the server has no signing key")?;
        let mut verifiers = HashMap::new();
        let mut public = Vec::new();
        for key in server_keys {
            verifiers.insert(
                key.kid.clone(),
                Verifier {
                    algorithm: key.algorithm,
                    key: DecodingKey::from_jwk(&key.public_jwk)?,
                },
            );
            public.push(key.public_jwk.clone());
        }
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
                    !verifiers.contains_key(&kid),
                    "key id {kid} appears twice among the trusted keys"
                );
                verifiers.insert(kid, verifier);
            }
        }
        Ok(KeyRing {
            verifiers,
            signer: (signer.kid.clone(), signer.encoding_key.clone()),
            public_jwks: JwkSet { keys: public },
        })
    }

    /// The server's own public keys, as published at `/oauth2/v0/jwks`.
    pub fn public_jwks(&self) -> &JwkSet {
        &self.public_jwks
    }

    /// Signs claims with the server's current key (RS256).
    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.signer.0.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.signer.1)?)
    }

    /// Verifies a bearer token and returns who it speaks for.
    pub fn verify(&self, token: &str) -> Result<Principal> {
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
        let kid = header
            .kid
            .ok_or_else(|| Error::unauthenticated("The token names no key (kid)."))?;
        let verifier = self
            .verifiers
            .get(&kid)
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
        principal(claims)
    }
}

fn principal(claims: Claims) -> Result<Principal> {
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
