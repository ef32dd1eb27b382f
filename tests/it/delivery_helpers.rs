//! What the delivery suites share: an app whose worker may reach a loopback receiver, a partner
//! subscribed by a company administrator, events published by the operator, and one worker pass
//! at a time.

use maestro::{
    auth::{TokenKind, signing::TokenRequest},
    notifications::Pass,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{helpers::*, receiver::Receiver};

pub(crate) const PARTNER: &str = "acme";
pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub(crate) const TRIP: &str = "naIzQJ0y2DBWjCIQOb2SHTsozwBsHDkdP";

/// An app with the receiver's loopback address allowed and a short retry schedule.
pub(crate) async fn spawn(backend: Backend, receiver: &Receiver) -> TestApp {
    let t = TestApp::spawn_with(backend, allow_loopback).await;
    register(&t, receiver).await;
    t
}

pub(crate) fn allow_loopback(settings: &mut maestro::Settings) {
    settings.delivery_allowed_subnets = vec!["127.0.0.0/8".parse().unwrap()];
    settings.delivery_retry_schedule = "10s,1m".parse().unwrap();
    settings.public_url = "https://maestro.example.com".into();
}

/// The partner with the receiver as its postback URL.
pub(crate) async fn register(t: &TestApp, receiver: &Receiver) {
    t.import_partner(
        PARTNER,
        &format!(
            "postback_url = \"{}\"\npostback_secret = \"{SECRET}\"",
            receiver.url
        ),
    )
    .await;
}

/// A company administrator working in `partner`'s application.
pub(crate) fn admin_user(t: &TestApp, partner: &str) -> String {
    t.token(TokenRequest {
        kind: TokenKind::User,
        subject: "5e1c1b4a-93a4-4c4e-9d43-1f1d0b7e0a11".into(),
        app_id: Some(partner.into()),
        scopes: vec![],
        company: Some(COMPANY.into()),
        roles: vec!["CompanyAdministrator".into()],
        ttl_secs: 600,
    })
}

pub(crate) fn app_token(t: &TestApp, scopes: &[&str]) -> String {
    t.token(TokenRequest {
        kind: TokenKind::App,
        subject: "operator".into(),
        app_id: Some("operator".into()),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        company: None,
        roles: vec![],
        ttl_secs: 600,
    })
}

pub(crate) async fn subscribe(t: &TestApp, object_type: &str) {
    subscribe_partner(t, PARTNER, object_type).await;
}

pub(crate) async fn subscribe_partner(t: &TestApp, partner: &str, object_type: &str) {
    let response = t
        .client
        .post(t.url(&format!("/api/company/v1.0/subscribe?type={object_type}")))
        .header("Authorization", format!("OAuth {}", admin_user(t, partner)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

pub(crate) fn event(object_type: &str) -> Value {
    let mut body = json!({
        "type": object_type, "eventType": "CREATE", "companyId": COMPANY,
        "userLogin": "cm@example.com", "occurredAt": "2013-02-13T08:12:35Z"
    });
    if object_type == "itinerary" {
        body["tripId"] = json!(TRIP);
    }
    body
}

/// Publishes an event; returns its delivery ids.
pub(crate) async fn publish(t: &TestApp, body: &Value) -> Vec<String> {
    let response = t
        .send_json(
            reqwest::Method::POST,
            "/internal/v1/company-events",
            &app_token(t, &["maestro.events.publish"]),
            body,
        )
        .await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    let deliveries = t
        .app
        .store
        .deliveries_of(accepted["eventId"].as_str().unwrap())
        .await
        .unwrap();
    deliveries.into_iter().map(|d| d.id).collect()
}

pub(crate) async fn pass(t: &TestApp, now: OffsetDateTime) -> Pass {
    t.app.delivery.run_once(now).await.unwrap()
}

pub(crate) async fn admin_get(t: &TestApp, path: &str) -> (u16, Value) {
    let response = t
        .client
        .get(t.url(path))
        .bearer_auth(app_token(t, &["maestro.admin"]))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

pub(crate) async fn delivery(t: &TestApp, id: &str) -> Value {
    let (status, body) = admin_get(t, &format!("/admin/v1/deliveries/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}
