//! The OAuth2 token endpoint, black-box (SPEC §2.1): each grant, each error, single use,
//! binding to client and company, refresh rotation and reuse detection (`token_revocation.rs`:
//! throttling, and revocation by a disconnection or a revoked secret).

use std::time::Duration;

use serde_json::Value;

use crate::{app_center_helpers::*, helpers::*};

/// Waits for the wall clock's next second: a token's `iat` has a one-second grain, and one
/// issued in the second of a revocation counts as issued before it.
pub(crate) async fn next_second() {
    let second = time::OffsetDateTime::now_utc().unix_timestamp();
    while time::OffsetDateTime::now_utc().unix_timestamp() == second {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_request_token_buys_a_company_token_that_submits_alerts(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let secret = t.partner_secret(GROUNDSPAN, None).await;
    let request_token = t.request_token(COMPANY, GROUNDSPAN).await;
    let response = t
        .token_request(
            Some((GROUNDSPAN, &secret)),
            &[
                ("grant_type", "password"),
                ("credtype", "authtoken"),
                ("username", COMPANY),
                ("password", &request_token),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers().contains_key("concur-correlationid"));
    let issued: Value = response.json().await.unwrap();
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["expires_in"], "3600");
    assert_eq!(issued["scope"], WRITE);
    assert_eq!(issued["id"], COMPANY);
    assert_eq!(issued["geolocation"], t.app.settings.public_url);
    let refresh_expires = issued["refresh_expires_in"].as_i64().unwrap();
    let in_days = (refresh_expires - time::OffsetDateTime::now_utc().unix_timestamp()) / 86_400;
    assert!((179..=180).contains(&in_days), "{issued}");
    let access = issued["access_token"].as_str().unwrap();
    assert_eq!(alert_status(&t, access).await, 200);

    // Single use.
    let again = t
        .token_request(
            Some((GROUNDSPAN, &secret)),
            &[
                ("grant_type", "password"),
                ("credtype", "authtoken"),
                ("username", COMPANY),
                ("password", &request_token),
            ],
        )
        .await;
    expect_oauth_error(again, 400, "invalid_grant").await;
}

async fn a_request_token_is_bound_to_its_company_and_client(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.import_partner("acme", "redirect_uris = [\"https://acme.example/cb\"]")
        .await;
    let groundspan = t.partner_secret(GROUNDSPAN, None).await;
    let acme = t.partner_secret("acme", None).await;
    let request_token = t.request_token(COMPANY, GROUNDSPAN).await;
    let redeem = |company| {
        [
            ("grant_type", "password"),
            ("credtype", "authtoken"),
            ("username", company),
            ("password", request_token.as_str()),
        ]
    };
    let other_company = t
        .token_request(Some((GROUNDSPAN, &groundspan)), &redeem(OTHER_COMPANY))
        .await;
    expect_oauth_error(other_company, 400, "invalid_grant").await;
    let other_client = t
        .token_request(Some(("acme", &acme)), &redeem(COMPANY))
        .await;
    expect_oauth_error(other_client, 400, "invalid_grant").await;
    // Neither attempt used it up.
    t.redeem(&groundspan, COMPANY, &request_token).await;
}

async fn refresh_tokens_rotate_and_a_replay_revokes_the_chain(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let secret = t.partner_secret(GROUNDSPAN, None).await;
    let first = t
        .redeem(
            &secret,
            COMPANY,
            &t.request_token(COMPANY, GROUNDSPAN).await,
        )
        .await;
    let first_refresh = first["refresh_token"].as_str().unwrap();

    let response = t.refresh(&secret, first_refresh).await;
    assert_eq!(response.status(), 200);
    let second: Value = response.json().await.unwrap();
    let second_refresh = second["refresh_token"].as_str().unwrap();
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(second["id"], COMPANY);
    assert_eq!(
        alert_status(&t, second["access_token"].as_str().unwrap()).await,
        200
    );

    // The used token again: refused, and the whole chain with it — refresh and access tokens.
    expect_oauth_error(
        t.refresh(&secret, first_refresh).await,
        400,
        "invalid_grant",
    )
    .await;
    expect_oauth_error(
        t.refresh(&secret, second_refresh).await,
        400,
        "invalid_grant",
    )
    .await;
    let second_access = second["access_token"].as_str().unwrap();
    assert_eq!(alert_status(&t, second_access).await, 401);
    assert_eq!(
        alert_status(&t, first["access_token"].as_str().unwrap()).await,
        401
    );
    // Another instance learns of it when it reads the revocations (at start, then every 5 s).
    let other = TestApp::spawn_on(t.db.clone(), |_| {}).await;
    assert_eq!(alert_status(&other, second_access).await, 401);
}

async fn a_refresh_may_narrow_the_scope_but_not_widen_it(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.import_partner(
        "acme",
        "scopes = [\"maestro.alerts.writeonly\", \"maestro.inbox.readwrite\"]\n\
         redirect_uris = [\"https://acme.example/cb\"]",
    )
    .await;
    let secret = t.partner_secret("acme", None).await;
    let request_token = t.request_token(COMPANY, "acme").await;
    let narrow = t
        .token_request(
            Some(("acme", &secret)),
            &[
                ("grant_type", "password"),
                ("credtype", "authtoken"),
                ("username", COMPANY),
                ("password", &request_token),
                ("scope", WRITE),
            ],
        )
        .await;
    let issued: Value = narrow.json().await.unwrap();
    assert_eq!(issued["scope"], WRITE);
    let refresh = issued["refresh_token"].as_str().unwrap();
    let wider = t
        .token_request(
            Some(("acme", &secret)),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("scope", "maestro.inbox.readwrite"),
            ],
        )
        .await;
    expect_oauth_error(wider, 400, "invalid_scope").await;
    // The refused request left the token as it was.
    let again = t
        .token_request(
            Some(("acme", &secret)),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(again.status(), 200);
}

async fn client_credentials_buy_an_app_token_without_a_refresh_token(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let producer = t
        .app
        .clients
        .internal_credentials("travel-core", &["maestro.events.publish".to_owned()], None)
        .await
        .unwrap();
    let response = t
        .token_request(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", producer.client_id.as_str()),
                ("client_secret", producer.client_secret.as_str()),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let issued: Value = response.json().await.unwrap();
    assert!(issued.get("refresh_token").is_none(), "{issued}");
    assert!(issued.get("id").is_none(), "{issued}");
    assert_eq!(issued["scope"], "maestro.events.publish");
    let event = serde_json::json!({
        "type": "fop", "eventType": "UPDATE", "companyId": COMPANY,
        "occurredAt": "2026-01-01T00:00:00Z"
    });
    let published = t
        .send_json(
            reqwest::Method::POST,
            "/internal/v1/company-events",
            issued["access_token"].as_str().unwrap(),
            &event,
        )
        .await;
    assert_eq!(published.status(), 202);

    // A producer is no partner: companies do not connect it.
    let response = t
        .token_request(
            Some(("travel-core", &producer.client_secret)),
            &[
                ("grant_type", "password"),
                ("credtype", "authtoken"),
                ("username", COMPANY),
                ("password", "x"),
            ],
        )
        .await;
    expect_oauth_error(response, 400, "unauthorized_client").await;
}

async fn each_malformed_request_gets_its_oauth_error(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let secret = t.partner_secret(GROUNDSPAN, None).await;
    let basic = Some((GROUNDSPAN, secret.as_str()));

    for (basic, form, status, error) in [
        (
            Some((GROUNDSPAN, "mcs_wrong")),
            vec![("grant_type", "client_credentials")],
            401,
            "invalid_client",
        ),
        (
            Some(("nobody", "x")),
            vec![("grant_type", "client_credentials")],
            401,
            "invalid_client",
        ),
        (
            None,
            vec![("grant_type", "client_credentials")],
            401,
            "invalid_client",
        ),
        (
            basic,
            vec![("grant_type", "implicit")],
            400,
            "unsupported_grant_type",
        ),
        (basic, vec![], 400, "invalid_request"),
        (
            basic,
            vec![
                ("grant_type", "password"),
                ("username", COMPANY),
                ("password", "x"),
            ],
            400,
            "invalid_request",
        ),
        (
            basic,
            vec![("grant_type", "refresh_token")],
            400,
            "invalid_request",
        ),
        (
            basic,
            vec![
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            400,
            "invalid_request",
        ),
        (
            basic,
            vec![("grant_type", "client_credentials"), ("client_secret", "x")],
            400,
            "invalid_request",
        ),
        (
            basic,
            vec![
                ("grant_type", "client_credentials"),
                ("scope", "maestro.admin"),
            ],
            400,
            "invalid_scope",
        ),
        (
            basic,
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "mrt_nothing"),
            ],
            400,
            "invalid_grant",
        ),
    ] {
        let response = t.token_request(basic, &form).await;
        let challenge = response.headers().get("www-authenticate").cloned();
        let body = expect_oauth_error(response, status, error).await;
        if status == 401 {
            assert_eq!(challenge.unwrap(), "Basic realm=\"maestro\"", "{body}");
        }
    }
    // Not a form: invalid_request.
    let json = t
        .client
        .post(t.url("/oauth2/v0/token"))
        .basic_auth(GROUNDSPAN, Some(&secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    expect_oauth_error(json, 400, "invalid_request").await;
}

crate::on_both_backends!(
    a_request_token_buys_a_company_token_that_submits_alerts,
    a_request_token_is_bound_to_its_company_and_client,
    refresh_tokens_rotate_and_a_replay_revokes_the_chain,
    a_refresh_may_narrow_the_scope_but_not_widen_it,
    client_credentials_buy_an_app_token_without_a_refresh_token,
    each_malformed_request_gets_its_oauth_error,
);
