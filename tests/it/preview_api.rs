//! Preview (SPEC §4.1): `POST /maestro/v4/alerts/preview` checks a body as a POST would,
//! renders it, and stores nothing.

use reqwest::Response;
use serde_json::{Value, json};

use crate::{helpers::*, inbox_helpers::*};

crate::on_both_backends!(
    the_seed_payload_previews_as_the_stored_alert_renders,
    a_bad_body_gets_exactly_the_errors_a_post_gets,
    a_preview_is_authorised_like_a_post_and_counts_against_the_rate_limit,
);

const PREVIEW: &str = "/maestro/v4/alerts/preview";

async fn preview_text(t: &TestApp, token: &str, text: impl Into<String>) -> Response {
    t.send_text(reqwest::Method::POST, PREVIEW, token, text)
        .await
}

async fn nothing_stored(t: &TestApp) {
    assert!(
        t.app.store.outbox_after(0, 10).await.unwrap().is_empty(),
        "nothing stored"
    );
    assert_eq!(
        t.inbox_json(&t.seed_user_token(), "").await["items"],
        json!([])
    );
}

async fn the_seed_payload_previews_as_the_stored_alert_renders(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    // Fixed dates, as the golden card was rendered with (the card shows none of them).
    let mut body: Value = serde_json::from_str(&fixture("groundspan_post.json")).unwrap();
    body["expiresAt"] = json!("2099-12-31T23:59:59Z");

    let response = preview_text(&t, &token, body.to_string()).await;
    assert_eq!(response.status(), 200);
    let preview: Value = response.json().await.unwrap();
    assert_eq!(preview["templateId"], "NOTIFY_TEMPLATE_ID");
    assert_eq!(preview["templateVersion"], 1);
    assert_eq!(preview["title"], "Groundspan: 3 travel offers for you");
    assert_golden(
        "groundspan_post.card.html",
        preview["html"].as_str().unwrap(),
    );
    nothing_stored(&t).await;

    // The alert a POST stores renders the same, and the POST is a first one, not a retry.
    let response = t.post_alert(&token, &body).await;
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["message"], "Alert created successfully");
    let revisions = t
        .app
        .store
        .alert_revisions(receipt["alertId"].as_str().unwrap())
        .await
        .unwrap();
    let stored = &revisions[0].rendering;
    assert_eq!(
        (
            preview["title"].as_str(),
            preview["html"].as_str(),
            preview["text"].as_str()
        ),
        (
            Some(stored.title.as_str()),
            Some(stored.html.as_str()),
            Some(stored.text.as_str())
        )
    );
    assert_eq!(revisions[0].template_version, 1);
}

/// Bodies a POST refuses, each for other reasons.
fn bad_bodies() -> Vec<(&'static str, String)> {
    let mut many = post_seed();
    many.as_object_mut().unwrap().remove("userId");
    many["createdAt"] = json!("not a date");
    let variant = &mut many["metadata"]["packages"][0]["variants"][1];
    variant["price"]["amount"] = json!("680");
    variant.as_object_mut().unwrap().remove("variantId");
    many["metadata"]["partnerLogoUrl"] = json!("http://groundspan.com/logo.png");

    let mut unknown_template = post_seed();
    unknown_template["templateId"] = json!("NO_SUCH_TEMPLATE");
    let mut past = post_seed();
    past["createdAt"] = json!("2025-08-19T10:00:00Z");
    past["expiresAt"] = json!("2025-12-31T23:59:59Z");
    let mut other_company = post_seed();
    other_company["companyId"] = json!(OTHER_COMPANY);
    let mut not_an_object = post_seed();
    not_an_object["metadata"] = json!(["not", "an", "object"]);
    vec![
        ("every problem at once", many.to_string()),
        ("unknown template", unknown_template.to_string()),
        ("expiry in the past", past.to_string()),
        ("another company", other_company.to_string()),
        ("metadata not an object", not_an_object.to_string()),
        ("broken JSON", r#"{"extRef": "x", "#.to_owned()),
        (
            "a member twice",
            r#"{"extRef": "x", "extRef": "y"}"#.to_owned(),
        ),
    ]
}

async fn a_bad_body_gets_exactly_the_errors_a_post_gets(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    for (what, text) in bad_bodies() {
        let posted = t.post_alert_text(&token, text.clone()).await;
        let previewed = preview_text(&t, &token, text).await;
        assert_eq!(previewed.status(), posted.status(), "{what}");
        assert!(previewed.status().is_client_error(), "{what}");
        let posted: Value = posted.json().await.unwrap();
        let previewed: Value = previewed.json().await.unwrap();
        assert_eq!(previewed, posted, "{what}");
    }
    let sent = t
        .client
        .post(t.url(PREVIEW))
        .bearer_auth(&token)
        .header("Content-Type", "text/plain")
        .body(post_seed().to_string())
        .send()
        .await
        .unwrap();
    expect_error(sent, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    nothing_stored(&t).await;
}

async fn a_preview_is_authorised_like_a_post_and_counts_against_the_rate_limit(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let body = post_seed().to_string();
    expect_error(
        preview_text(&t, "not-a-jwt", body.clone()).await,
        401,
        "INVALID_TOKEN",
    )
    .await;
    let unscoped = t.company_token(COMPANY, GROUNDSPAN, &[INBOX]);
    expect_error(
        preview_text(&t, &unscoped, body.clone()).await,
        403,
        "INSUFFICIENT_SCOPE",
    )
    .await;
    let unregistered = t.company_token(COMPANY, "not-registered", &[WRITE]);
    expect_error(
        preview_text(&t, &unregistered, body.clone()).await,
        403,
        "UNKNOWN_PARTNER",
    )
    .await;

    // A preview does a POST's work (checks and rendering): it takes from the same budget.
    t.import_partner("limited", "[rate_limit]\nper_second = 1\nburst = 2\n")
        .await;
    let limited = t.company_token(COMPANY, "limited", &[WRITE]);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = preview_text(&t, &limited, body.clone()).await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..2], [200, 200]);
    assert!(statuses.contains(&429), "{statuses:?}");
    nothing_stored(&t).await;

    // Counted as previews, not as alerts created.
    let metrics = t.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(r#"maestro_alerts_accepted_total{operation="preview","#)),
        "{metrics}"
    );
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with(r#"maestro_alerts_accepted_total{operation="create","#)),
        "{metrics}"
    );
}
