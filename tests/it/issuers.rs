//! External issuers (SPEC §2): sources written `ISSUER=SOURCE` pin `iss` and, when set, the
//! trusted audience; URL sources are fetched at start-up and refetched for unknown keys at most
//! once a minute. Time is moved with the app's clock, never waited for.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{
    helpers::*,
    jwks_server::{JwksServer, jwks_file, published_key},
};

const ISSUER: &str = "https://idp.example.com";
const AUDIENCE: &str = "https://maestro.example.com";

/// A company token signed by the fixture key `alg` under `kid`, with these claims added.
fn token(alg: Algorithm, kid: &str, extra: Value) -> String {
    let mut claims = claims(COMPANY, &[WRITE]);
    for (name, value) in extra.as_object().unwrap() {
        claims[name] = value.clone();
    }
    external_token(alg, kid, &claims)
}

async fn spawn_trusting(
    backend: Backend,
    entries: &[impl AsRef<str>],
    audience: Option<&str>,
) -> TestApp {
    TestApp::spawn_with(backend, |settings| {
        settings.trusted_jwks = entries.iter().map(|e| trusted_source(e.as_ref())).collect();
        settings.trusted_audience = audience.map(str::to_owned);
        settings.trusted_jwks_ca = Some(fixture_path("tls/ca.pem"));
    })
    .await
}

async fn accepted(t: &TestApp, token: &str, why: &str) {
    let response = t.post_alert(token, &post_seed()).await;
    assert_eq!(
        response.status(),
        200,
        "{why}: {}",
        response.text().await.unwrap()
    );
}

async fn refused(t: &TestApp, token: &str, why: &str) -> String {
    let response = t.post_alert(token, &post_seed()).await;
    assert_eq!(response.status(), 401, "{why}");
    let body = expect_error(response, 401, "INVALID_TOKEN").await;
    body["errors"][0]["errorMessage"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits (observing, not sleeping blindly) until `n` fetches of URL sources have ended.
async fn until_fetched(t: &TestApp, n: u64) {
    let issuers = t.app.keyring.issuers();
    let fetched = async {
        while issuers.fetches().completed < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), fetched)
        .await
        .unwrap_or_else(|_| panic!("never saw fetch {n}: {:?}", issuers.fetches()));
}

async fn a_source_with_an_issuer_accepts_only_tokens_naming_it(backend: Backend) {
    let file = fixture_path("keys/trusted_jwks.json");
    let t = spawn_trusting(backend, &[format!("{ISSUER}={}", file.display())], None).await;
    accepted(
        &t,
        &token(Algorithm::RS256, "ext-rsa-1", json!({"iss": ISSUER})),
        "its issuer",
    )
    .await;
    accepted(
        &t,
        &token(
            Algorithm::EdDSA,
            "ext-ed-1",
            json!({"iss": ISSUER, "aud": "anyone"}),
        ),
        "no audience is asked for unless one is set",
    )
    .await;
    for (iss, why) in [
        (json!("https://evil.example.com"), "another issuer"),
        (json!(format!("{ISSUER}/")), "exactly, not nearly"),
        (json!([ISSUER]), "an array is not an issuer"),
        (json!(null), "null"),
    ] {
        refused(
            &t,
            &token(Algorithm::ES256, "ext-ec-1", json!({"iss": iss})),
            why,
        )
        .await;
    }
    let message = refused(&t, &token(Algorithm::ES256, "ext-ec-1", json!({})), "none").await;
    assert!(message.contains("iss"), "{message}");
    accepted(
        &t,
        &t.groundspan_token(),
        "the server's own tokens are not affected",
    )
    .await;
}

async fn the_trusted_audience_is_required_of_sources_with_an_issuer(backend: Backend) {
    let pinned = jwks_file(&[published_key("RSA", "pinned-rsa")]);
    let open = jwks_file(&[published_key("EC", "open-ec")]);
    let entries = [
        format!("{ISSUER}={}", pinned.path().display()),
        open.path().display().to_string(),
    ];
    let t = spawn_trusting(backend, &entries, Some(AUDIENCE)).await;
    let pinned = |extra: Value| {
        let mut claims = json!({"iss": ISSUER});
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        token(Algorithm::RS256, "pinned-rsa", claims)
    };
    accepted(&t, &pinned(json!({"aud": AUDIENCE})), "a string").await;
    accepted(
        &t,
        &pinned(json!({"aud": ["other", AUDIENCE]})),
        "an array holding it",
    )
    .await;
    let message = refused(&t, &pinned(json!({})), "no aud").await;
    assert!(message.contains("aud"), "{message}");
    refused(&t, &pinned(json!({"aud": "other"})), "another audience").await;
    refused(
        &t,
        &pinned(json!({"aud": ["other"]})),
        "an array without it",
    )
    .await;
    refused(&t, &pinned(json!({"aud": []})), "an empty array").await;
    refused(
        &t,
        &pinned(json!({"aud": [AUDIENCE], "iss": "x"})),
        "the issuer still counts",
    )
    .await;

    for extra in [json!({}), json!({"aud": "other", "iss": "anyone"})] {
        accepted(
            &t,
            &token(Algorithm::ES256, "open-ec", extra),
            "a source without issuer",
        )
        .await;
    }
    accepted(
        &t,
        &t.groundspan_token(),
        "the server's own tokens carry no aud",
    )
    .await;
}

async fn a_url_source_is_fetched_at_start_and_refetched_for_unknown_kids_once_a_minute(
    backend: Backend,
) {
    let idp = JwksServer::start(&[published_key("RSA", "url-rsa")]).await;
    let t = spawn_trusting(backend, &[format!("{ISSUER}={}", idp.url)], None).await;
    let issuers = t.app.keyring.issuers().clone();
    assert_eq!(idp.requests(), 1, "fetched at start-up");
    let iss = || json!({"iss": ISSUER});
    accepted(
        &t,
        &token(Algorithm::RS256, "url-rsa", iss()),
        "a fetched key",
    )
    .await;
    refused(
        &t,
        &token(Algorithm::RS256, "url-rsa", json!({"iss": "x"})),
        "its issuer",
    )
    .await;

    // A key published after the start-up fetch, used within the minute: refused, no refetch.
    idp.publish(&[
        published_key("RSA", "url-rsa"),
        published_key("EC", "url-ec"),
    ]);
    let started = OffsetDateTime::now_utc();
    refused(
        &t,
        &token(Algorithm::ES256, "url-ec", iss()),
        "within the minute",
    )
    .await;
    assert_eq!(issuers.fetches().requested, 1);

    // A minute on, the same token is refused at once and asks for the refetch that lets it in.
    t.app.clock.pin(started + Duration::from_secs(61));
    refused(
        &t,
        &token(Algorithm::ES256, "url-ec", iss()),
        "refused while refetching",
    )
    .await;
    assert_eq!(issuers.fetches().requested, 2);
    until_fetched(&t, 2).await;
    accepted(
        &t,
        &token(Algorithm::ES256, "url-ec", iss()),
        "after the refetch",
    )
    .await;
    assert_eq!(idp.requests(), 2);

    // Many unknown kids within the next minute: not one more fetch.
    idp.publish(&[
        published_key("RSA", "url-rsa"),
        published_key("OKP", "url-ed"),
    ]);
    t.app.clock.pin(started + Duration::from_secs(61 + 59));
    for n in 0..20 {
        let kid = format!("attacker-{n}");
        refused(&t, &token(Algorithm::RS256, &kid, iss()), &kid).await;
    }
    refused(
        &t,
        &token(Algorithm::EdDSA, "url-ed", iss()),
        "rate limited",
    )
    .await;
    assert_eq!(
        issuers.fetches().requested,
        2,
        "no refetch within the minute"
    );

    t.app.clock.pin(started + Duration::from_secs(61 + 60));
    refused(&t, &token(Algorithm::EdDSA, "url-ed", iss()), "asks again").await;
    until_fetched(&t, 3).await;
    accepted(&t, &token(Algorithm::EdDSA, "url-ed", iss()), "refetched").await;
    refused(
        &t,
        &token(Algorithm::ES256, "url-ec", iss()),
        "url-ec was withdrawn",
    )
    .await;
    assert_eq!(idp.requests(), 3);
    assert_eq!(
        issuers.fetches(),
        maestro::auth::issuers::Fetches {
            requested: 3,
            completed: 3
        }
    );
}

/// The verified-token cache must not outlive the key: a token accepted before its key was
/// withdrawn is refused after.
async fn a_key_withdrawn_by_a_url_source_stops_verifying_tokens_it_verified_before(
    backend: Backend,
) {
    let both = [
        published_key("RSA", "url-rsa"),
        published_key("EC", "url-ec"),
    ];
    let idp = JwksServer::start(&both).await;
    let t = spawn_trusting(backend, &[&idp.url], None).await;
    let remembered = token(Algorithm::ES256, "url-ec", json!({}));
    accepted(&t, &remembered, "first use").await;
    accepted(&t, &remembered, "remembered").await;
    idp.publish(&both[..1]);
    t.app
        .clock
        .pin(OffsetDateTime::now_utc() + Duration::from_secs(61));
    refused(
        &t,
        &token(Algorithm::ES256, "rotated", json!({})),
        "asks for a refetch",
    )
    .await;
    until_fetched(&t, 2).await;
    refused(&t, &remembered, "its key is gone").await;
    accepted(
        &t,
        &token(Algorithm::RS256, "url-rsa", json!({})),
        "the kept key",
    )
    .await;
}

/// The periodic refresh, one pass at a time: due when the document's max-age has passed. The
/// server's loop runs meanwhile but adds no fetch: each pin is followed at once (no await) by
/// the pass that takes the due source, and a source taken is due to no other pass.
#[tokio::test]
async fn a_url_source_is_refreshed_once_its_max_age_has_passed() {
    let idp = JwksServer::start(&[]).await;
    idp.publish_with_cache_control(&[published_key("RSA", "url-rsa")], "public, max-age=300");
    let t = spawn_trusting(Backend::Sqlite, &[&idp.url], None).await;
    // After the start-up fetch, so that "300 s later" is past its due time.
    let started = OffsetDateTime::now_utc();
    let issuers = t.app.keyring.issuers();
    t.app.clock.pin(started + Duration::from_secs(290));
    issuers.refresh_due().await;
    assert_eq!(idp.requests(), 1, "not yet due");
    idp.publish(&[published_key("EC", "url-ec")]);
    t.app.clock.pin(started + Duration::from_secs(301));
    issuers.refresh_due().await;
    assert_eq!(idp.requests(), 2, "due");
    accepted(
        &t,
        &token(Algorithm::ES256, "url-ec", json!({})),
        "refreshed",
    )
    .await;
    refused(
        &t,
        &token(Algorithm::RS256, "url-rsa", json!({})),
        "withdrawn",
    )
    .await;

    // A failed refresh keeps the keys, and is tried again a minute later.
    idp.fail_with(503, "down");
    t.app.clock.pin(started + Duration::from_secs(301 + 600));
    issuers.refresh_due().await;
    assert_eq!(idp.requests(), 3);
    accepted(&t, &token(Algorithm::ES256, "url-ec", json!({})), "kept").await;
    t.app
        .clock
        .pin(started + Duration::from_secs(301 + 600 + 59));
    issuers.refresh_due().await;
    assert_eq!(idp.requests(), 3, "not before a minute");
    t.app
        .clock
        .pin(started + Duration::from_secs(301 + 600 + 60));
    issuers.refresh_due().await;
    assert_eq!(idp.requests(), 4);
}

fn failure(result: anyhow::Result<std::sync::Arc<maestro::App>>) -> String {
    format!("{:#}", result.err().unwrap())
}

/// Start-up stops, naming the URL, when the first fetch fails: a wrong URL, an untrusted
/// certificate or a document that is no JWKS would otherwise show only as refused tokens.
#[tokio::test]
async fn start_up_fails_naming_a_url_source_it_cannot_fetch() {
    let idp = JwksServer::start(&[published_key("RSA", "url-rsa")]).await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let open = |entry: &str, ca: Option<&str>| {
        let mut settings = maestro::Settings::with_database("127.0.0.1:0", &db.url);
        settings.trusted_jwks = vec![trusted_source(entry)];
        settings.trusted_jwks_ca = ca.map(fixture_path);
        maestro::App::open(settings)
    };

    let untrusted = failure(open(&idp.url, None).await);
    assert!(untrusted.contains(&idp.url), "{untrusted}");
    assert!(
        untrusted.to_lowercase().contains("certificate"),
        "{untrusted}"
    );

    idp.fail_with(500, "oops");
    let failed = failure(open(&idp.url, Some("tls/ca.pem")).await);
    assert!(
        failed.contains(&idp.url) && failed.contains("500"),
        "{failed}"
    );

    idp.fail_with(200, "<html>not keys</html>");
    let garbled = failure(open(&idp.url, Some("tls/ca.pem")).await);
    assert!(
        garbled.contains(&idp.url) && garbled.contains("JWKS"),
        "{garbled}"
    );

    idp.fail_with(200, &"x".repeat(600 * 1024));
    let huge = failure(open(&idp.url, Some("tls/ca.pem")).await);
    assert!(huge.contains("larger than"), "{huge}");

    idp.publish(&[published_key("RSA", "url-rsa")]);
    assert!(open(&idp.url, Some("tls/ca.pem")).await.is_ok());
}

crate::on_both_backends!(
    a_source_with_an_issuer_accepts_only_tokens_naming_it,
    the_trusted_audience_is_required_of_sources_with_an_issuer,
    a_url_source_is_fetched_at_start_and_refetched_for_unknown_kids_once_a_minute,
    a_key_withdrawn_by_a_url_source_stops_verifying_tokens_it_verified_before,
);
