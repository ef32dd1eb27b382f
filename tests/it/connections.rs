//! Company connections, black-box: a company administrator connects, lists and disconnects a
//! partner app (SPEC §2.1).

use serde_json::{Value, json};

use crate::{app_center_helpers::*, helpers::*};

/// `GET /app-mgmt/v0/connections` as `admin`.
async fn connected_apps(t: &TestApp, admin: &str) -> Value {
    let response = t
        .client
        .get(t.url("/app-mgmt/v0/connections"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn an_administrator_connects_lists_and_disconnects_an_app(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let admin = t.admin_token(COMPANY);
    let response = t.connect_app(&admin, GROUNDSPAN).await;
    assert_eq!(response.status(), 201);
    let connected: Value = response.json().await.unwrap();
    let request_token = connected["requestToken"].as_str().unwrap();
    assert!(request_token.len() > 40, "{connected}");
    assert_eq!(connected["appId"], GROUNDSPAN);
    assert_eq!(connected["companyId"], COMPANY);
    assert_eq!(
        connected["redirectUrl"],
        format!(
            "https://www.groundspan.com/concur/connect?id={COMPANY}&requestToken={request_token}\
             &userId={ADMIN_USER}"
        )
    );
    let expires = time::OffsetDateTime::parse(
        connected["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let hours = (expires - time::OffsetDateTime::now_utc()).whole_minutes() as f64 / 60.0;
    assert!((23.9..=24.0).contains(&hours), "{hours}");

    let listed = connected_apps(&t, &admin).await;
    let connections = listed["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 1, "{listed}");
    assert_eq!(connections[0]["appId"], GROUNDSPAN);
    assert_eq!(connections[0]["connectedBy"], ADMIN_USER);
    assert!(connections[0]["connectedAt"].as_str().is_some());
    // Another company sees none of it.
    let other = connected_apps(&t, &t.admin_token(OTHER_COMPANY)).await;
    assert_eq!(other["connections"], json!([]));

    for _ in 0..2 {
        let gone = t
            .client
            .delete(t.url("/app-mgmt/v0/connections/groundspan"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 204, "idempotent");
    }
    let listed = connected_apps(&t, &admin).await;
    assert_eq!(listed["connections"], json!([]));
}

async fn only_a_company_administrator_connects_a_known_app(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let no_token = t
        .client
        .post(t.url("/app-mgmt/v0/connections"))
        .json(&json!({"appId": GROUNDSPAN}))
        .send()
        .await
        .unwrap();
    expect_error(no_token, 401, "INVALID_TOKEN").await;
    let user = t.user_token_with("u-1", COMPANY, &[]);
    expect_error(t.connect_app(&user, GROUNDSPAN).await, 403, "ROLE_REQUIRED").await;
    let company = t.company_token(COMPANY, GROUNDSPAN, &[WRITE]);
    expect_error(
        t.connect_app(&company, GROUNDSPAN).await,
        403,
        "ROLE_REQUIRED",
    )
    .await;

    let admin = t.admin_token(COMPANY);
    let unknown = expect_error(t.connect_app(&admin, "nobody").await, 404, "APP_NOT_FOUND").await;
    assert_eq!(unknown["errors"][0]["details"]["field"], "/appId");
    let missing = t
        .client
        .post(t.url("/app-mgmt/v0/connections"))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(missing, 400, "MISSING_FIELD").await;
    let gone = t
        .client
        .delete(t.url("/app-mgmt/v0/connections/nobody"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    expect_error(gone, 404, "APP_NOT_FOUND").await;

    // A partner without a redirect URI cannot be connected: there is nowhere to send the admin.
    t.import_partner("acme", "").await;
    expect_error(
        t.connect_app(&admin, "acme").await,
        409,
        "APP_NOT_CONNECTABLE",
    )
    .await;
    t.import_partner("acme", "redirect_uris = [\"https://acme.example/cb?x=1\"]")
        .await;
    let connected: Value = t.connect_app(&admin, "acme").await.json().await.unwrap();
    assert!(
        connected["redirectUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://acme.example/cb?x=1&id="),
        "{connected}"
    );
}

async fn connecting_again_issues_a_new_request_token_and_voids_the_old(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let secret = t.partner_secret(GROUNDSPAN, None).await;
    let first = t.request_token(COMPANY, GROUNDSPAN).await;
    let second = t.request_token(COMPANY, GROUNDSPAN).await;
    assert_ne!(first, second);
    let response = t
        .token_request(
            Some((GROUNDSPAN, &secret)),
            &[
                ("grant_type", "password"),
                ("credtype", "authtoken"),
                ("username", COMPANY),
                ("password", &first),
            ],
        )
        .await;
    expect_oauth_error(response, 400, "invalid_grant").await;
    t.redeem(&secret, COMPANY, &second).await;
}

crate::on_both_backends!(
    an_administrator_connects_lists_and_disconnects_an_app,
    only_a_company_administrator_connects_a_known_app,
    connecting_again_issues_a_new_request_token_and_voids_the_old,
);
