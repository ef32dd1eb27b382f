//! Token checks of SPEC §2, attacked from the outside.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::helpers::*;

fn server_kid(t: &TestApp) -> String {
    t.app.keyring.public_jwks().keys[0]
        .common
        .key_id
        .clone()
        .unwrap()
}

async fn assert_refused(t: &TestApp, token: &str, why: &str) {
    let response = t.post_alert(token, &post_seed()).await;
    assert_eq!(response.status(), 401, "{why}");
    let challenge = response.headers().get("www-authenticate").cloned();
    assert!(
        challenge.is_some_and(|c| c.to_str().unwrap().starts_with("Bearer")),
        "{why}"
    );
    expect_error(response, 401, "INVALID_TOKEN").await;
}

async fn assert_accepted(t: &TestApp, token: &str, why: &str) {
    let response = t.post_alert(token, &post_seed()).await;
    assert_eq!(
        response.status(),
        200,
        "{why}: {}",
        response.text().await.unwrap()
    );
}

fn unsigned(header: Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

async fn external_issuers_sign_with_rs256_es256_and_eddsa(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let claims = claims(COMPANY, &[WRITE]);
    for (alg, kid) in [
        (Algorithm::RS256, "ext-rsa-1"),
        (Algorithm::ES256, "ext-ec-1"),
        (Algorithm::EdDSA, "ext-ed-1"),
    ] {
        assert_accepted(&t, &external_token(alg, kid, &claims), kid).await;
    }
}

async fn a_space_separated_scope_string_is_accepted(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut claims = claims(COMPANY, &[]);
    claims["concur.scopes"] = json!("openid maestro.alerts.writeonly");
    assert_accepted(
        &t,
        &external_token(Algorithm::RS256, "ext-rsa-1", &claims),
        "string scopes",
    )
    .await;
}

async fn missing_or_malformed_authorization_is_401(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let response = t
        .client
        .post(t.url("/maestro/v4/alerts"))
        .header("Content-Type", "application/json")
        .body(post_seed().to_string())
        .send()
        .await
        .unwrap();
    expect_error(response, 401, "INVALID_TOKEN").await;

    let token = t.groundspan_token();
    for header in [
        token.clone(),
        format!("Basic {token}"),
        "Bearer".to_owned(),
        "Bearer not.a.jwt".to_owned(),
    ] {
        let response = t
            .client
            .post(t.url("/maestro/v4/alerts"))
            .header("Authorization", header.clone())
            .header("Content-Type", "application/json")
            .body(post_seed().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header}");
    }
}

async fn alg_none_is_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let claims = claims(COMPANY, &[WRITE]);
    for alg in ["none", "None", "NONE"] {
        let token = unsigned(
            json!({"alg": alg, "typ": "JWT", "kid": server_kid(&t)}),
            &claims,
        );
        assert_refused(&t, &token, alg).await;
    }
}

async fn hs256_is_refused_even_when_keyed_with_a_trusted_public_key(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let claims = claims(COMPANY, &[WRITE]);
    let public_pem = fixture("keys/rsa.pub.pem");
    for (secret, kid) in [
        (public_pem.as_bytes().to_vec(), "ext-rsa-1".to_owned()),
        (b"secret".to_vec(), server_kid(&t)),
    ] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        assert_refused(&t, &token, &format!("HS256 with kid {kid}")).await;
    }
}

async fn the_algorithm_is_pinned_to_the_key(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    // A valid RS256 signature, but presented under the EC key's id.
    let token = external_token(Algorithm::RS256, "ext-ec-1", &claims(COMPANY, &[WRITE]));
    assert_refused(&t, &token, "RS256 under an ES256 key").await;
}

async fn a_token_without_kid_or_with_an_unknown_kid_is_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let claims = claims(COMPANY, &[WRITE]);
    let key = EncodingKey::from_rsa_pem(fixture("keys/rsa.pem").as_bytes()).unwrap();
    let no_kid = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
    assert_refused(&t, &no_kid, "no kid").await;
    assert_refused(
        &t,
        &external_token(Algorithm::RS256, "unknown", &claims),
        "unknown kid",
    )
    .await;
}

async fn a_bad_signature_is_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let claims = claims(COMPANY, &[WRITE]);
    // Signed by the external RSA key, claiming to be the server's key.
    assert_refused(
        &t,
        &external_token(Algorithm::RS256, &server_kid(&t), &claims),
        "wrong key",
    )
    .await;
    // A genuine token whose claims were swapped after signing.
    let genuine = t.groundspan_token();
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut forged_claims = claims.clone();
    forged_claims["sub"] = json!(OTHER_COMPANY);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged_claims.to_string()),
        parts[2]
    );
    assert_refused(&t, &forged, "tampered claims").await;
}

async fn expiry_and_not_before_are_enforced_with_60s_leeway(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let sign = |patch: Value| {
        let mut claims = claims(COMPANY, &[WRITE]);
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        external_token(Algorithm::ES256, "ext-ec-1", &claims)
    };
    assert_refused(&t, &sign(json!({"exp": now - 120})), "expired").await;
    assert_refused(&t, &sign(json!({"nbf": now + 300})), "not yet valid").await;
    let mut no_exp = claims(COMPANY, &[WRITE]);
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_refused(
        &t,
        &external_token(Algorithm::ES256, "ext-ec-1", &no_exp),
        "no exp",
    )
    .await;
    assert_accepted(&t, &sign(json!({"exp": now - 20})), "expired within leeway").await;
    assert_accepted(&t, &sign(json!({"nbf": now + 20})), "nbf within leeway").await;
}

async fn a_token_without_the_scope_is_403(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.company_token(COMPANY, GROUNDSPAN, &["maestro.inbox.readwrite"]);
    let response = t.post_alert(&token, &post_seed()).await;
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    expect_error(response, 403, "INSUFFICIENT_SCOPE").await;
    expect_error(
        t.put_alert(&token, None, &post_seed()).await,
        403,
        "INSUFFICIENT_SCOPE",
    )
    .await;
}

async fn the_server_publishes_its_keys_and_its_tokens_verify_against_them(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let jwks: jsonwebtoken::jwk::JwkSet = t.get_json("/oauth2/v0/jwks").await;
    assert_eq!(jwks.keys.len(), 1);
    let jwk = &jwks.keys[0];
    let value = serde_json::to_value(jwk).unwrap();
    assert_eq!(value["kty"], "RSA");
    assert_eq!(value["alg"], "RS256");
    assert!(
        value.get("d").is_none(),
        "the private exponent must never be published"
    );

    let token = t.groundspan_token();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
    assert_eq!(data.claims["sub"], COMPANY);
    assert_eq!(data.header.kid, jwk.common.key_id);
}

async fn a_critical_header_extension_is_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let key = EncodingKey::from_rsa_pem(fixture("keys/rsa.pem").as_bytes()).unwrap();
    let claims = claims(COMPANY, &[WRITE]);
    for crit in [vec!["exp"], vec!["http://example.com/unknown"]] {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("ext-rsa-1".into());
        header.crit = Some(crit.iter().map(|c| (*c).to_owned()).collect());
        let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        assert_refused(&t, &token, "crit").await;
    }
    // The same token without `crit` is fine.
    assert_accepted(
        &t,
        &external_token(Algorithm::RS256, "ext-rsa-1", &claims),
        "plain",
    )
    .await;
}

/// A live stream is the token's to use: it ends when the token would no longer be accepted.
#[tokio::test]
async fn a_live_inbox_stream_ends_when_its_token_expires() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "sub": crate::inbox_helpers::SEED_USER, "concur.type": "user", "concur.company": COMPANY,
        "concur.scopes": ["maestro.inbox.readwrite"],
        // Expired, but inside the 60 s leeway for two more seconds.
        "exp": now - 58,
    });
    let token = external_token(Algorithm::RS256, "ext-rsa-1", &claims);
    let mut stream = t.stream(&token).await;
    assert!(stream.ended().await, "the stream outlived its token");
    // And it cannot be opened again with that token.
    let response = t
        .client
        .get(t.url("/maestro/v4/inbox/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_error(response, 401, "INVALID_TOKEN").await;
}

crate::on_both_backends!(
    a_critical_header_extension_is_refused,
    external_issuers_sign_with_rs256_es256_and_eddsa,
    a_space_separated_scope_string_is_accepted,
    missing_or_malformed_authorization_is_401,
    alg_none_is_refused,
    hs256_is_refused_even_when_keyed_with_a_trusted_public_key,
    the_algorithm_is_pinned_to_the_key,
    a_token_without_kid_or_with_an_unknown_kid_is_refused,
    a_bad_signature_is_refused,
    expiry_and_not_before_are_enforced_with_60s_leeway,
    a_token_without_the_scope_is_403,
    the_server_publishes_its_keys_and_its_tokens_verify_against_them,
);
