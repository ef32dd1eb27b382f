//! What ends a partner's tokens at the token endpoint (SPEC §2.1): failed client authentication
//! throttled, a disconnection that revokes refresh and access tokens for good (on a second
//! instance too), and a rotated secret that keeps working for its grace while a revoked one
//! does not.

use std::time::Duration;

use maestro::apps::Rotation;
use serde_json::Value;

use crate::{app_center_helpers::*, helpers::*, token_endpoint::next_second};

crate::on_both_backends!(
    repeated_failed_client_authentication_is_throttled,
    a_disconnection_revokes_refresh_and_access_tokens_for_good,
    a_second_instance_refuses_a_disconnected_apps_tokens_after_its_refresh,
    a_rotated_secret_keeps_working_for_its_grace_and_a_revoked_one_does_not,
);

async fn repeated_failed_client_authentication_is_throttled(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let secret = t.partner_secret(GROUNDSPAN, None).await;
    let form = [("grant_type", "client_credentials")];
    for _ in 0..5 {
        let response = t
            .token_request(Some((GROUNDSPAN, "mcs_wrong")), &form)
            .await;
        expect_oauth_error(response, 401, "invalid_client").await;
    }
    // Now even the right secret waits: the secret is not checked again until the window ends.
    let response = t.token_request(Some((GROUNDSPAN, &secret)), &form).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    expect_oauth_error(response, 429, "slow_down").await;
}

async fn a_disconnection_revokes_refresh_and_access_tokens_for_good(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let secret = t.partner_secret(GROUNDSPAN, None).await;
    let issued = t
        .redeem(
            &secret,
            COMPANY,
            &t.request_token(COMPANY, GROUNDSPAN).await,
        )
        .await;
    let access = issued["access_token"].as_str().unwrap().to_owned();
    let refresh = issued["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(alert_status(&t, &access).await, 200);
    // A token of the same app for another company is not concerned.
    let other = t.company_token(OTHER_COMPANY, GROUNDSPAN, &[WRITE]);

    let gone = t
        .client
        .delete(t.url("/app-mgmt/v0/connections/groundspan"))
        .bearer_auth(t.admin_token(COMPANY))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    assert_eq!(alert_status(&t, &access).await, 401);
    expect_oauth_error(t.refresh(&secret, &refresh).await, 400, "invalid_grant").await;
    let mut other_alert = post_seed();
    other_alert["companyId"] = OTHER_COMPANY.into();
    assert_eq!(t.post_alert(&other, &other_alert).await.status(), 200);

    // Connected again: the new tokens work, the old access token stays refused.
    next_second().await;
    let renewed = t
        .redeem(
            &secret,
            COMPANY,
            &t.request_token(COMPANY, GROUNDSPAN).await,
        )
        .await;
    assert_eq!(
        alert_status(&t, renewed["access_token"].as_str().unwrap()).await,
        200
    );
    assert_eq!(alert_status(&t, &access).await, 401);
}

async fn a_second_instance_refuses_a_disconnected_apps_tokens_after_its_refresh(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = TestApp::spawn_on(a.db.clone(), |_| {}).await;
    let secret = a.partner_secret(GROUNDSPAN, None).await;
    let issued = a
        .redeem(
            &secret,
            COMPANY,
            &a.request_token(COMPANY, GROUNDSPAN).await,
        )
        .await;
    let access = issued["access_token"].as_str().unwrap().to_owned();
    assert_eq!(alert_status(&b, &access).await, 200);
    let gone = a
        .client
        .delete(a.url("/app-mgmt/v0/connections/groundspan"))
        .bearer_auth(a.admin_token(COMPANY))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    assert_eq!(
        alert_status(&a, &access).await,
        401,
        "at once where it was done"
    );
    // What the other instance's refresh loop does every MAESTRO_CATALOG_REFRESH (at most 5 s).
    b.app.revocations.refresh().await.unwrap();
    assert_eq!(alert_status(&b, &access).await, 401);
}

async fn a_rotated_secret_keeps_working_for_its_grace_and_a_revoked_one_does_not(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let old = t.partner_secret(GROUNDSPAN, None).await;
    let form = [("grant_type", "client_credentials")];
    let before: Value = t
        .token_request(Some((GROUNDSPAN, &old)), &form)
        .await
        .json()
        .await
        .unwrap();
    let new = t
        .partner_secret(
            GROUNDSPAN,
            Some(Rotation {
                grace: Duration::from_secs(3600),
                revoke_tokens: false,
            }),
        )
        .await;
    for secret in [&old, &new] {
        assert_eq!(
            t.token_request(Some((GROUNDSPAN, secret)), &form)
                .await
                .status(),
            200
        );
    }
    let token = before["access_token"].as_str().unwrap();
    let mut body = post_seed();
    body["companyId"] = COMPANY.into();
    assert_eq!(t.post_alert(token, &body).await.status(), 200);

    // A leaked secret: rotated with its tokens revoked (by the CLI, another process: this
    // instance learns of it with its next refresh).
    next_second().await;
    let newest = t
        .partner_secret(
            GROUNDSPAN,
            Some(Rotation {
                grace: Duration::from_secs(3600),
                revoke_tokens: true,
            }),
        )
        .await;
    for secret in [&old, &new] {
        let response = t.token_request(Some((GROUNDSPAN, secret)), &form).await;
        expect_oauth_error(response, 401, "invalid_client").await;
    }
    t.app.revocations.refresh().await.unwrap();
    assert_eq!(t.post_alert(token, &body).await.status(), 401);
    next_second().await;
    let fresh: Value = t
        .token_request(Some((GROUNDSPAN, &newest)), &form)
        .await
        .json()
        .await
        .unwrap();
    let mut body = post_seed();
    body["companyId"] = COMPANY.into();
    assert_eq!(
        t.post_alert(fresh["access_token"].as_str().unwrap(), &body)
            .await
            .status(),
        200
    );
}
