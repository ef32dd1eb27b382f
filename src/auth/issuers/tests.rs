//! The sources' keys: what is kept, who owns a `kid`, when a refetch may happen.

use std::io::Write;

use serde_json::{Value, json};
use tempfile::NamedTempFile;

use super::*;
use crate::{
    auth::{KeyRing, server_keys::ServerKeys},
    store::SigningKeyRecord,
};

fn fixture_keys() -> Vec<Value> {
    let fixture: Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/keys/trusted_jwks.json"
    ))
    .unwrap();
    fixture["keys"].as_array().unwrap().clone()
}

/// The fixture key of type `kty`, under `kid`.
fn fixture_key(kty: &str, kid: &str) -> Value {
    let mut key = fixture_keys()
        .into_iter()
        .find(|key| key["kty"] == kty)
        .unwrap();
    key["kid"] = json!(kid);
    key
}

fn jwks_file(keys: &[Value]) -> NamedTempFile {
    let mut file = NamedTempFile::new().unwrap();
    file.write_all(json!({ "keys": keys }).to_string().as_bytes())
        .unwrap();
    file
}

fn source(entry: String) -> TrustedSource {
    entry.parse().unwrap()
}

async fn load(files: &[&NamedTempFile]) -> anyhow::Result<Issuers> {
    let sources: Vec<_> = files
        .iter()
        .map(|file| source(file.path().display().to_string()))
        .collect();
    Issuers::load(&sources, None, None, Arc::default()).await
}

fn kids(issuers: &Issuers) -> Vec<(String, usize)> {
    let keys = issuers.keys.read().unwrap();
    let mut kids: Vec<_> = keys.values().map(|k| (k.kid.clone(), k.source)).collect();
    kids.sort();
    kids
}

fn owned(kids: &[(&str, usize)]) -> Vec<(String, usize)> {
    kids.iter().map(|(k, s)| ((*k).to_owned(), *s)).collect()
}

#[tokio::test]
async fn a_source_keeps_only_pinnable_signing_keys() {
    let rsa = fixture_key("RSA", "rsa");
    let mut rs384 = fixture_key("RSA", "rs384");
    rs384["alg"] = json!("RS384");
    let mut encryption = fixture_key("RSA", "enc");
    encryption["use"] = json!("enc");
    let mut p384 = fixture_key("EC", "p384");
    p384["crv"] = json!("P-384");
    let oct = json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"});
    let unknown_type = json!({"kty": "AKP", "kid": "post-quantum", "alg": "ML-DSA-44"});
    let file = jwks_file(&[rsa, rs384, encryption, p384, oct, unknown_type]);
    let issuers = Arc::new(load(&[&file]).await.unwrap());
    assert_eq!(kids(&issuers), owned(&[("rsa", 0)]));

    let record = SigningKeyRecord::new(
        "server-1",
        "RS256",
        include_str!("../../../tests/fixtures/keys/rsa.pem").into(),
        OffsetDateTime::now_utc(),
    );
    let server = || ServerKeys::from_records(std::slice::from_ref(&record)).unwrap();
    let ring = KeyRing::new(server(), Some(issuers)).unwrap();
    assert_eq!(
        ring.public_jwks().keys.len(),
        1,
        "only the server's own keys are published"
    );

    let clash = Arc::new(
        load(&[&jwks_file(&[fixture_key("EC", "server-1")])])
            .await
            .unwrap(),
    );
    let err = KeyRing::new(server(), Some(clash)).err().unwrap();
    assert!(err.to_string().contains("server-1"), "{err}");
}

#[tokio::test]
async fn at_start_up_a_kid_must_be_unique_and_present() {
    let first = jwks_file(&[fixture_key("RSA", "a")]);
    let second = jwks_file(&[fixture_key("EC", "b"), fixture_key("OKP", "a")]);
    let err = load(&[&first, &second]).await.err().unwrap();
    assert!(err.to_string().contains("key id a appears twice"), "{err}");
    assert!(
        err.to_string()
            .contains(&second.path().display().to_string()),
        "names the source: {err}"
    );

    let twice = jwks_file(&[fixture_key("RSA", "a"), fixture_key("EC", "a")]);
    assert!(load(&[&twice]).await.is_err());

    let mut anonymous = fixture_key("RSA", "x");
    anonymous.as_object_mut().unwrap().remove("kid");
    let err = load(&[&jwks_file(&[anonymous])]).await.err().unwrap();
    assert!(err.to_string().contains("needs a kid"), "{err}");

    let missing = source("/nonexistent/idp.jwks".into());
    let err = Issuers::load(&[missing], None, None, Arc::default())
        .await
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("/nonexistent/idp.jwks"),
        "{err:#}"
    );
}

#[tokio::test]
async fn a_refreshed_source_cannot_take_a_kid_another_source_holds() {
    let first = jwks_file(&[fixture_key("RSA", "a")]);
    let second = jwks_file(&[fixture_key("EC", "b")]);
    let issuers = load(&[&first, &second]).await.unwrap();
    let held = issuers.current("a").unwrap();
    // The second source now publishes `a` too (with other material), a new key, and `b`.
    let refreshed = vec![
        fixture_key("EC", "a"),
        fixture_key("OKP", "c"),
        fixture_key("EC", "b"),
    ];
    issuers.install(1, refreshed, false).unwrap();
    assert_eq!(kids(&issuers), owned(&[("a", 0), ("b", 1), ("c", 1)]));
    assert!(issuers.is_current(&held), "the first source keeps its key");
}

#[tokio::test]
async fn a_refresh_keeps_unchanged_keys_and_withdraws_the_others() {
    let file = jwks_file(&[fixture_key("RSA", "a"), fixture_key("EC", "b")]);
    let issuers = load(&[&file]).await.unwrap();
    let (a, b) = (issuers.current("a").unwrap(), issuers.current("b").unwrap());
    let mut changed = fixture_key("OKP", "a");
    changed["use"] = json!("sig");
    issuers
        .install(0, vec![fixture_key("EC", "b")], false)
        .unwrap();
    assert!(!issuers.is_current(&a), "withdrawn");
    assert!(
        issuers.is_current(&b),
        "the same key is the same ExternalKey"
    );
    issuers
        .install(0, vec![changed, fixture_key("EC", "b")], false)
        .unwrap();
    assert!(!issuers.is_current(&a), "another key under the same kid");
    assert_eq!(issuers.current("a").unwrap().algorithm(), Algorithm::EdDSA);
}

#[test]
fn unknown_kids_refetch_each_url_source_at_most_once_a_minute() {
    let file = source("/etc/idp.jwks".into());
    let first = source("https://one.example.com=https://one.example.com/jwks".into());
    let second = source("https://two.example.com/jwks?v=1".into());
    let clock = Arc::new(Clock::system());
    let start = OffsetDateTime::now_utc();
    clock.pin(start);
    let issuers = Issuers::new(&[file, first, second], None, None, clock.clone());
    // The loop taking the refetches up.
    let fetched = |issuers: &Issuers| assert_eq!(issuers.take_due().len(), 2);
    assert!(issuers.key("unknown-1").is_none());
    assert_eq!(issuers.fetches().requested, 2, "one per URL source");
    assert!(issuers.key("unknown-2").is_none());
    assert_eq!(issuers.fetches().requested, 2, "already asked for");
    fetched(&issuers);
    for seconds in [1, 30, 59] {
        clock.pin(start + Duration::from_secs(seconds));
        assert!(issuers.key(&format!("unknown-at-{seconds}")).is_none());
    }
    assert_eq!(issuers.fetches().requested, 2, "within the minute");
    clock.pin(start + REFETCH_INTERVAL);
    assert!(issuers.key("unknown-3").is_none());
    assert_eq!(issuers.fetches().requested, 4, "a minute later");
    fetched(&issuers);
    clock.pin(start - Duration::from_secs(3600));
    assert!(issuers.key("unknown-4").is_none());
    assert_eq!(
        issuers.fetches().requested,
        6,
        "a clock set back an hour does not stop refetches for an hour"
    );
    assert_eq!(issuers.until_next_refresh(), Duration::ZERO, "asked for");
}

/// The tests drive passes while the server's loop runs: two passes must not both fetch a source
/// for one due time.
#[test]
fn a_source_being_fetched_is_not_due_to_another_pass() {
    let clock = Arc::new(Clock::system());
    let start = OffsetDateTime::now_utc();
    clock.pin(start);
    let url = source("https://idp.example.com/jwks".into());
    let issuers = Issuers::new(&[url], None, None, clock.clone());
    assert_eq!(issuers.take_due().len(), 1, "never fetched");
    assert!(issuers.take_due().is_empty(), "being fetched");
    assert!(issuers.key("unknown").is_none());
    assert_eq!(
        issuers.fetches().requested,
        1,
        "the fetch under way answers"
    );
    assert_eq!(issuers.until_next_refresh(), fetch::MIN_REFRESH);
    clock.pin(start + Duration::from_secs(59));
    assert!(issuers.take_due().is_empty());
    clock.pin(start + fetch::MIN_REFRESH);
    assert_eq!(
        issuers.take_due().len(),
        1,
        "a fetch that never ended counts as failed"
    );
    assert_eq!(issuers.fetches().requested, 2);
}

#[test]
fn the_audience_is_asked_only_of_sources_with_an_issuer() {
    let sources = [
        source("/etc/open.jwks".into()),
        source("https://idp=/etc/pinned.jwks".into()),
    ];
    let issuers = Issuers::new(&sources, Some("maestro"), None, Arc::default());
    assert_eq!(issuers.sources[0].audience, None);
    assert_eq!(issuers.sources[1].audience.as_deref(), Some("maestro"));
    assert_eq!(issuers.sources[1].issuer.as_deref(), Some("https://idp"));
}

#[test]
fn the_rules_of_a_source_with_an_issuer_are_added_to_the_validation() {
    let key = |issuer: Option<&str>, audience: Option<&str>| ExternalKey {
        kid: "k".into(),
        algorithm: Algorithm::RS256,
        key: DecodingKey::from_secret(b"unused"),
        jwk: serde_json::from_value(fixture_key("RSA", "k")).unwrap(),
        source: 0,
        issuer: issuer.map(Into::into),
        audience: audience.map(Into::into),
    };
    let base = || {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation
    };
    let mut open = base();
    key(None, None).restrict(&mut open);
    assert!(open.iss.is_none() && !open.validate_aud);
    let mut pinned = base();
    key(Some("https://idp"), Some("maestro")).restrict(&mut pinned);
    assert!(pinned.iss.unwrap().contains("https://idp"));
    assert!(pinned.aud.unwrap().contains("maestro") && pinned.validate_aud);
    assert!(pinned.required_spec_claims.contains("iss"));
    assert!(pinned.required_spec_claims.contains("aud"));
}
