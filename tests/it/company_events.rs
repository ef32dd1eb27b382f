//! Company events enter through the internal API and owe one delivery per subscription.

use maestro::{auth::TokenKind, auth::signing::TokenRequest};
use serde_json::{Value, json};

use crate::helpers::*;

fn app_token(t: &TestApp, scopes: &[&str]) -> String {
    t.token(TokenRequest {
        kind: TokenKind::App,
        subject: "travel-core".into(),
        app_id: Some("travel-core".into()),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        company: None,
        roles: vec![],
        ttl_secs: 600,
    })
}

fn admin_token(t: &TestApp) -> String {
    t.token(TokenRequest {
        kind: TokenKind::User,
        subject: "5e1c1b4a-93a4-4c4e-9d43-1f1d0b7e0a11".into(),
        app_id: Some(GROUNDSPAN.into()),
        scopes: vec![],
        company: Some(COMPANY.into()),
        roles: vec!["CompanyAdministrator".into()],
        ttl_secs: 600,
    })
}

fn itinerary_event(company: &str) -> Value {
    json!({
        "type": "itinerary", "eventType": "CREATE", "companyId": company,
        "userLogin": "cm@example.com", "tripId": "naIzQJ0y2DBWjCIQOb2SHTsozwBsHDkdP",
        "occurredAt": "2013-02-13T08:12:35Z", "object": {"TripName": "Paris"}
    })
}

async fn publish(t: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    t.send_json(
        reqwest::Method::POST,
        "/internal/v1/company-events",
        token,
        body,
    )
    .await
}

async fn an_event_owes_one_delivery_per_matching_subscription(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let subscribed = t
        .client
        .post(t.url("/api/company/v1.0/subscribe?type=itinerary"))
        .header("Authorization", format!("OAuth {}", admin_token(&t)))
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), 200);
    let producer = app_token(&t, &["maestro.events.publish"]);

    let response = publish(&t, &producer, &itinerary_event(COMPANY)).await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["deliveries"], 1);
    let event_id = accepted["eventId"].as_str().unwrap();
    let deliveries = t.app.store.deliveries_of(event_id).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        (
            deliveries[0].partner_id.as_str(),
            deliveries[0].status.as_str()
        ),
        (GROUNDSPAN, "pending")
    );
    let id = deliveries[0].id.strip_prefix("msg_").unwrap();
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{}",
        deliveries[0].id
    );

    // Another company, or a type nobody subscribed to, owes nothing.
    let response = publish(&t, &producer, &itinerary_event(OTHER_COMPANY)).await;
    assert_eq!(response.json::<Value>().await.unwrap()["deliveries"], 0);
    let fop = json!({"type": "fop", "eventType": "UPDATE", "companyId": COMPANY, "occurredAt": "2026-01-01T00:00:00Z"});
    let response = publish(&t, &producer, &fop).await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.json::<Value>().await.unwrap()["deliveries"], 0);
}

async fn a_bad_event_is_400_with_every_problem(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let producer = app_token(&t, &["maestro.events.publish"]);
    let body = json!({"type": "itinerary", "eventType": "DELETE", "companyId": COMPANY, "occurredAt": "yesterday"});
    let response = publish(&t, &producer, &body).await;
    assert_eq!(response.status(), 400);
    let mut errors = error_list(response).await;
    errors.sort();
    let expected: Vec<(String, Option<String>)> = [
        ("INVALID_FIELD", "/eventType"),
        ("INVALID_FIELD", "/occurredAt"),
        ("MISSING_FIELD", "/tripId"),
        ("MISSING_FIELD", "/userLogin"),
    ]
    .iter()
    .map(|(c, f)| ((*c).to_owned(), Some((*f).to_owned())))
    .collect();
    assert_eq!(errors, expected);
}

async fn only_an_app_token_with_the_scope_may_publish(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let body = itinerary_event(COMPANY);
    expect_error(publish(&t, "nope", &body).await, 401, "INVALID_TOKEN").await;
    expect_error(
        publish(&t, &app_token(&t, &["maestro.admin"]), &body).await,
        403,
        "INSUFFICIENT_SCOPE",
    )
    .await;
    let company = t.company_token(COMPANY, GROUNDSPAN, &["maestro.events.publish"]);
    expect_error(
        publish(&t, &company, &body).await,
        403,
        "INSUFFICIENT_SCOPE",
    )
    .await;
}

crate::on_both_backends!(
    an_event_owes_one_delivery_per_matching_subscription,
    a_bad_event_is_400_with_every_problem,
    only_an_app_token_with_the_scope_may_publish,
);
