//! The legacy company notification subscription API (v1.0, XML), as a partner drives it.

use maestro::{auth::TokenKind, auth::signing::TokenRequest, store::Subscription};

use crate::helpers::*;

fn user_token(t: &TestApp, roles: &[&str]) -> String {
    t.token(TokenRequest {
        kind: TokenKind::User,
        subject: "5e1c1b4a-93a4-4c4e-9d43-1f1d0b7e0a11".into(),
        app_id: Some(GROUNDSPAN.into()),
        scopes: vec![],
        company: Some(COMPANY.into()),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        ttl_secs: 600,
    })
}

async fn call(
    t: &TestApp,
    action: &str,
    query: &str,
    authorization: Option<String>,
) -> reqwest::Response {
    let mut request = t
        .client
        .post(t.url(&format!("/api/company/v1.0/{action}{query}")));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    request.send().await.unwrap()
}

/// Asserts an XML error of `status` whose message mentions `needle`.
async fn expect_xml_error(response: reqwest::Response, status: u16, needle: &str) {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["content-type"], "application/xml");
    let id = response.headers()["concur-correlationid"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    assert!(
        body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Message>"),
        "{body}"
    );
    assert!(body.contains(needle), "{body}");
    assert!(body.contains("</Message><Server-Time>"), "{body}");
    assert!(body.ends_with(&format!("<Id>{id}</Id></Error>")), "{body}");
}

async fn subscriptions(t: &TestApp) -> Vec<String> {
    t.app
        .store
        .subscriptions(COMPANY)
        .await
        .unwrap()
        .into_iter()
        .map(
            |Subscription {
                 partner_id,
                 object_type,
                 ..
             }| format!("{partner_id}:{object_type}"),
        )
        .collect()
}

async fn an_admin_subscribes_and_unsubscribes_idempotently(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let admin = Some(format!(
        "OAuth {}",
        user_token(&t, &["CompanyAdministrator"])
    ));
    for query in ["?type=itinerary", "?type=ITINERARY", "?type=Fop"] {
        let response = call(&t, "subscribe", query, admin.clone()).await;
        assert_eq!(response.status(), 200, "{query}");
        assert!(response.text().await.unwrap().is_empty(), "an empty body");
    }
    assert_eq!(
        subscriptions(&t).await,
        ["groundspan:fop", "groundspan:itinerary"]
    );
    for _ in 0..2 {
        let response = call(&t, "unsubscribe", "?type=itinerary", admin.clone()).await;
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().is_empty());
    }
    assert_eq!(subscriptions(&t).await, ["groundspan:fop"]);
}

async fn every_admin_role_and_the_bearer_scheme_are_accepted(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    for role in [
        "CompanyAdministrator",
        "WebServicesAdministrator",
        "CanAdminister",
    ] {
        let bearer = Some(format!("Bearer {}", user_token(&t, &["Traveler", role])));
        assert_eq!(
            call(&t, "subscribe", "?type=profile", bearer)
                .await
                .status(),
            200,
            "{role}"
        );
    }
    assert_eq!(subscriptions(&t).await, ["groundspan:profile"]);
}

async fn no_or_a_bad_token_is_401_in_xml(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    expect_xml_error(
        call(&t, "subscribe", "?type=itinerary", None).await,
        401,
        "Authorization",
    )
    .await;
    expect_xml_error(
        call(
            &t,
            "subscribe",
            "?type=itinerary",
            Some("OAuth not.a.jwt".into()),
        )
        .await,
        401,
        "JWT",
    )
    .await;
    expect_xml_error(
        call(
            &t,
            "unsubscribe",
            "?type=itinerary",
            Some("Basic abc".into()),
        )
        .await,
        401,
        "Authorization",
    )
    .await;
}

async fn without_an_admin_role_it_is_403(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let traveler = Some(format!("OAuth {}", user_token(&t, &["Traveler"])));
    expect_xml_error(
        call(&t, "subscribe", "?type=itinerary", traveler).await,
        403,
        "administrative role",
    )
    .await;
    // A company token is not a user, let alone an admin.
    let company = Some(format!("OAuth {}", t.groundspan_token()));
    expect_xml_error(
        call(&t, "unsubscribe", "?type=itinerary", company).await,
        403,
        "administrative role",
    )
    .await;
    assert!(subscriptions(&t).await.is_empty());
}

async fn a_missing_or_unknown_type_is_400(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let admin = Some(format!(
        "OAuth {}",
        user_token(&t, &["CompanyAdministrator"])
    ));
    expect_xml_error(
        call(&t, "subscribe", "", admin.clone()).await,
        400,
        "type parameter is required",
    )
    .await;
    expect_xml_error(
        call(&t, "subscribe", "?type=expense", admin.clone()).await,
        400,
        "Unknown type",
    )
    .await;
    expect_xml_error(
        call(&t, "unsubscribe", "?kind=fop", admin).await,
        400,
        "type parameter is required",
    )
    .await;
    assert!(subscriptions(&t).await.is_empty());
}

crate::on_both_backends!(
    an_admin_subscribes_and_unsubscribes_idempotently,
    every_admin_role_and_the_bearer_scheme_are_accepted,
    no_or_a_bad_token_is_401_in_xml,
    without_an_admin_role_it_is_403,
    a_missing_or_unknown_type_is_400,
);
