//! Token verification.
//!
//! Each trusted key is pinned to one algorithm (RS256, ES256 or EdDSA) when it is loaded; a token
//! is checked with its key's algorithm only, so `alg: none`, HS256 and "HMAC keyed with the public
//! key" tokens can never verify. A token must name its key (`kid`), be signed by it, carry `exp`,
//! and be inside its `nbf`/`exp` window give or take [`LEEWAY_SECS`].

use std::{collections::HashMap, path::Path, sync::RwLock};

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

/// The longest id, scope or role a token may carry.
const MAX_CLAIM_CHARS: usize = 255;

struct Verifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The keys this server trusts, and the one it signs with.
pub struct KeyRing {
    verifiers: HashMap<String, Verifier>,
    verified: VerifiedTokens,
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
            verified: VerifiedTokens::default(),
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
mod tests {
    use std::io::Write;

    use jsonwebtoken::EncodingKey;
    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;
    use crate::{auth::signing::server_key, error::ErrorCode, store::SigningKeyRecord};

    fn ring(trusted: Option<&Path>) -> KeyRing {
        let record = SigningKeyRecord {
            kid: "server-1".into(),
            algorithm: "RS256".into(),
            private_pem: include_str!("../../tests/fixtures/keys/rsa.pem").into(),
            created_at: OffsetDateTime::now_utc(),
        };
        KeyRing::new(&[server_key(&record).unwrap()], trusted).unwrap()
    }

    fn claims(kind: &str) -> serde_json::Value {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        json!({"sub": "ABC-Company", "concur.type": kind, "concur.scopes": ["s"],
               "concur.appId": "app", "exp": now + 60})
    }

    fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &serde_json::Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn refusal(ring: &KeyRing, token: &str) -> String {
        match ring.verify(token) {
            Err(Error::Rejected(problems)) => {
                assert_eq!(problems[0].code, ErrorCode::InvalidToken);
                problems[0].message.clone()
            }
            other => panic!("expected a 401, got {other:?}"),
        }
    }

    fn server_key_pem() -> EncodingKey {
        EncodingKey::from_rsa_pem(include_bytes!("../../tests/fixtures/keys/rsa.pem")).unwrap()
    }

    #[test]
    fn a_token_the_server_signed_verifies_into_its_principal() {
        let ring = ring(None);
        let claims: Claims = serde_json::from_value(claims("company")).unwrap();
        let principal = ring.verify(&ring.sign(&claims).unwrap()).unwrap();
        assert_eq!(principal.kind, TokenKind::Company);
        assert_eq!(principal.company_id.as_deref(), Some("abc-company"));
        assert_eq!(principal.app_id.as_deref(), Some("app"));
        assert!(principal.has_scope("s"));
    }

    #[test]
    fn expired_and_premature_tokens_are_refused_beyond_the_leeway() {
        let ring = ring(None);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut expired = claims("company");
        expired["exp"] = json!(now - 61 - LEEWAY_SECS as i64);
        let message = refusal(
            &ring,
            &sign(Algorithm::RS256, "server-1", &server_key_pem(), &expired),
        );
        assert!(message.contains("expired"), "{message}");
        let mut early = claims("company");
        early["nbf"] = json!(now + 10 + LEEWAY_SECS as i64);
        let message = refusal(
            &ring,
            &sign(Algorithm::RS256, "server-1", &server_key_pem(), &early),
        );
        assert!(message.contains("not valid yet"), "{message}");
    }

    #[test]
    fn a_remembered_token_is_served_only_inside_its_window_and_only_for_its_exact_text() {
        let ring = ring(None);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let token = sign(
            Algorithm::RS256,
            "server-1",
            &server_key_pem(),
            &claims("company"),
        );
        let principal = ring.verify(&token).unwrap();
        // Stand-ins for remembered tokens, so that a hit is told apart from a verification.
        let valid = Window {
            not_before: Some(now - 5),
            expires: now + 5,
        };
        ring.verified.insert("remembered", principal.clone(), valid);
        assert_eq!(ring.verify("remembered").unwrap(), principal);
        assert!(
            ring.verify("remembered ").is_err(),
            "another text is verified afresh"
        );
        let lapsed = Window {
            not_before: None,
            expires: now - 1 - LEEWAY_SECS as i64,
        };
        ring.verified
            .insert("remembered", principal.clone(), lapsed);
        assert!(
            ring.verify("remembered").is_err(),
            "an expired entry is not served"
        );
        let early = Window {
            not_before: Some(now + 1 + LEEWAY_SECS as i64),
            expires: now + 600,
        };
        ring.verified.insert("remembered", principal, early);
        assert!(
            ring.verify("remembered").is_err(),
            "a premature entry is not served"
        );
    }

    #[test]
    fn hmac_and_unknown_keys_are_refused() {
        let ring = ring(None);
        let hs = sign(
            Algorithm::HS256,
            "server-1",
            &EncodingKey::from_secret(b"k"),
            &claims("company"),
        );
        assert!(refusal(&ring, &hs).contains("algorithm"));
        let unknown = sign(
            Algorithm::RS256,
            "other",
            &server_key_pem(),
            &claims("company"),
        );
        assert!(refusal(&ring, &unknown).contains("not trusted"));
    }

    #[test]
    fn a_critical_extension_is_refused_whatever_it_names() {
        let ring = ring(None);
        for crit in [vec!["exp"], vec!["b64"], vec!["urn:example:unknown"]] {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some("server-1".into());
            header.crit = Some(crit.iter().map(|c| c.to_string()).collect());
            let token =
                jsonwebtoken::encode(&header, &claims("company"), &server_key_pem()).unwrap();
            assert!(refusal(&ring, &token).contains("crit"), "{crit:?}");
        }
    }

    #[test]
    fn claims_holding_forbidden_characters_or_too_long_are_refused() {
        let ring = ring(None);
        for (claim, value) in [
            ("sub", json!("C\u{0}")),
            ("concur.appId", json!("app\u{1}")),
            ("concur.scopes", json!(["s", "x\u{1f}"])),
            ("sub", json!("c".repeat(256))),
        ] {
            let mut claims = claims("company");
            claims[claim] = value;
            let token = sign(Algorithm::RS256, "server-1", &server_key_pem(), &claims);
            let message = refusal(&ring, &token);
            assert!(
                message.contains("U+00") || message.contains("255"),
                "{claim}"
            );
        }
    }

    #[test]
    fn a_user_token_must_name_its_company() {
        let ring = ring(None);
        let token = sign(
            Algorithm::RS256,
            "server-1",
            &server_key_pem(),
            &claims("user"),
        );
        assert!(refusal(&ring, &token).contains("concur.company"));
        let mut with_company = claims("user");
        with_company["concur.company"] = json!("C1");
        let token = sign(
            Algorithm::RS256,
            "server-1",
            &server_key_pem(),
            &with_company,
        );
        assert_eq!(
            ring.verify(&token).unwrap().company_id.as_deref(),
            Some("c1")
        );
    }

    #[test]
    fn trusted_jwks_keep_only_pinnable_signing_keys() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/keys/trusted_jwks.json"))
                .unwrap();
        let rsa = fixture["keys"][0].clone();
        let mut rs384 = rsa.clone();
        rs384["kid"] = json!("rs384");
        rs384["alg"] = json!("RS384");
        let mut encryption = rsa.clone();
        encryption["kid"] = json!("enc");
        encryption["use"] = json!("enc");
        let oct = json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"});
        let set = json!({"keys": [rsa, rs384, encryption, oct]});
        file.write_all(set.to_string().as_bytes()).unwrap();
        let ring = ring(Some(file.path()));
        let mut kids: Vec<_> = ring.verifiers.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["ext-rsa-1", "server-1"]);
        assert_eq!(
            ring.public_jwks().keys.len(),
            1,
            "only the server's own keys are published"
        );
    }
}
