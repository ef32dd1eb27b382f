//! The key ring's unit tests: what verifies and what is refused.

use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use time::OffsetDateTime;

use super::*;
use crate::{error::ErrorCode, store::SigningKeyRecord};

fn ring(issuers: Option<Arc<Issuers>>) -> KeyRing {
    let record = SigningKeyRecord::new(
        "server-1",
        "RS256",
        include_str!("../../../tests/fixtures/keys/rsa.pem").into(),
        OffsetDateTime::now_utc(),
    );
    KeyRing::new(ServerKeys::from_records(&[record]).unwrap(), issuers).unwrap()
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
    EncodingKey::from_rsa_pem(include_bytes!("../../../tests/fixtures/keys/rsa.pem")).unwrap()
}

#[test]
fn a_token_the_server_signed_verifies_into_its_principal() {
    let ring = ring(None);
    let claims: Claims = serde_json::from_value(claims("company")).unwrap();
    let principal = ring.verify(&ring.signer().sign(&claims).unwrap()).unwrap();
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
    ring.verified
        .insert("remembered", principal.clone(), valid, None);
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
        .insert("remembered", principal.clone(), lapsed, None);
    assert!(
        ring.verify("remembered").is_err(),
        "an expired entry is not served"
    );
    let early = Window {
        not_before: Some(now + 1 + LEEWAY_SECS as i64),
        expires: now + 600,
    };
    ring.verified.insert("remembered", principal, early, None);
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
        let token = jsonwebtoken::encode(&header, &claims("company"), &server_key_pem()).unwrap();
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
