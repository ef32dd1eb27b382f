//! The inbox's rendering, black-box: both seed payloads render to the golden Groundspan card,
//! hostile strings in every field come out as text, and a template that cannot render an alert
//! refuses it with a reason.

use maestro::{partners::bundle, store::PartnerImport};
use serde_json::{Value, json};

use crate::{helpers::*, inbox_helpers::*};

crate::on_both_backends!(both_seed_payloads_render_to_the_golden_card);

/// A seed payload with fixed dates (the card shows none of the alert's own dates), so that its
/// rendering can be compared with a golden file.
fn golden_seed(name: &str) -> Value {
    let mut body: Value = serde_json::from_str(&fixture(name)).unwrap();
    body["expiresAt"] = json!("2099-12-31T23:59:59Z");
    body
}

async fn both_seed_payloads_render_to_the_golden_card(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let user = t.seed_user_token();
    let id = t.create_alert(&golden_seed("groundspan_post.json")).await;
    let inbox = t.inbox_json(&user, "").await;
    let item = &inbox["items"][0];
    assert_eq!(item["alertId"], id.as_str());
    assert_eq!(item["title"], "Groundspan: 3 travel offers for you");
    assert_eq!(item["templateId"], "NOTIFY_TEMPLATE_ID");
    assert_eq!(item["expiresAt"], "2099-12-31T23:59:59Z");
    assert_eq!(item["read"], false);
    assert_golden("groundspan_post.card.html", item["html"].as_str().unwrap());

    // The update seed is a PUT of the same extRef: new content, unread again.
    assert_eq!(t.mark(&user, &id, "read").await.status(), 200);
    let response = t
        .put_alert(
            &t.groundspan_token(),
            None,
            &golden_seed("groundspan_put.json"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let inbox = t.inbox_json(&user, "").await;
    let item = &inbox["items"][0];
    assert_eq!(item["title"], "Groundspan: 1 travel offer for you");
    assert_eq!(
        item["read"], false,
        "an update makes the alert unread again"
    );
    assert_golden("groundspan_put.card.html", item["html"].as_str().unwrap());

    // Each revision keeps the rendering and the template version it was made with.
    let owner = maestro::store::AlertOwner {
        partner_id: GROUNDSPAN.into(),
        company_id: COMPANY.into(),
    };
    let revisions = t.app.store.alert_revisions(&id).await.unwrap();
    assert_eq!(revisions.len(), 2);
    assert!(revisions.iter().all(|r| r.template_version == 1));
    assert!(revisions[0].rendering.html.contains("450.00 USD"));
    assert!(revisions[1].rendering.html.contains("425.00 USD"));
    assert_golden("groundspan_put.text.txt", &revisions[1].rendering.text);
    let stored = t.app.store.alert(&owner, &id).await.unwrap().unwrap();
    assert_eq!(*stored.content.rendering, revisions[1].rendering);
}

/// A Groundspan body with a hostile string in every field a partner fills.
fn hostile_body() -> Value {
    // 60 characters: within every field's length limit.
    let evil = r#"<script>alert(1)</script>"'&{{ 7*7 }}<img src=x onerror=y()>"#;
    let evil_url = r#"https://groundspan.com/"><script>alert(3)</script>?q='x'&r=<b>"#;
    let mut body = post_seed();
    body["title"] = json!(evil);
    body["topic"] = json!(evil);
    body["msgType"] = json!(evil);
    body["metadata"] = json!({
        "partnerProvider": evil,
        "partnerLogoUrl": evil_url,
        "partnerAccessibilityTextPrompt": format!("\" onload=\"alert(4) {evil}"),
        "packages": [{
            "packageId": evil,
            "packageTitle": evil,
            "travelDate": "2025-08-01",
            "location": {"origin": evil, "destination": evil},
            "variants": [{
                "variantId": evil,
                "variantTitle": evil,
                "variantDesc": evil,
                "variantProvider": evil,
                "variantLogoUrl": evil_url,
                "variantAccessibilityTextPrompt": evil,
                "variantStartDate": "2025-08-01T10:00:00Z",
                "variantEndDate": "",
                "price": {"amount": 1.5, "currency": "EUR"},
                "userActions": {"label": evil, "href": evil_url}
            }]
        }]
    });
    body
}

#[tokio::test]
async fn hostile_strings_in_every_field_come_out_as_text() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let user = t.seed_user_token();
    t.create_alert(&hostile_body()).await;
    let inbox = t.inbox_json(&user, "").await;
    let item = &inbox["items"][0];
    let html = item["html"].as_str().unwrap();

    maestro::partners::markup::check(html).expect("the card keeps the markup rules");
    for forbidden in ["<script", "<img src=x", "<b>", "\" onload", "'x'"] {
        assert!(!html.contains(forbidden), "{forbidden} in {html}");
    }
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("{{ 7*7 }}"),
        "data is never evaluated as a template"
    );
    // Only the three markup-made tags carry addresses, each the https URL escaped.
    let escaped_url = "\"https://groundspan.com/&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;\
                       ?q=&#39;x&#39;&amp;r=&lt;b&gt;\"";
    assert_eq!(
        html.matches(&format!("src={escaped_url}")).count(),
        2,
        "{html}"
    );
    assert_eq!(
        html.matches(&format!("href={escaped_url}")).count(),
        1,
        "{html}"
    );
    assert_eq!(html.matches("<a ").count(), 1);
    assert_eq!(html.matches("<img ").count(), 2);
    // The title and the text are plain text: JSON carries them as they were sent.
    assert!(
        item["title"]
            .as_str()
            .unwrap()
            .starts_with("<script>alert(1)</script>")
    );
    assert_eq!(
        item["topic"].as_str().unwrap(),
        item["msgType"].as_str().unwrap()
    );

    // The page shows the title escaped too.
    let cookie = t.sign_in(SEED_USER, COMPANY).await;
    let page = t
        .client
        .get(t.url("/inbox"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>alert"), "{page}");
    assert_eq!(
        page.matches("<script").count(),
        1,
        "only the page's own script tag"
    );
}

#[tokio::test]
async fn a_template_that_cannot_render_the_alert_refuses_it_with_a_reason() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let partner = |card: &str| -> PartnerImport {
        let files = [
            (
                "partner.toml",
                "id = \"broken\"\nname = \"Broken\"\nallowed_url_domains = [\"groundspan.com\", \"concur.com\"]\n".to_owned(),
            ),
            (
                "templates/NOTIFY_TEMPLATE_ID/schema.json",
                std::fs::read_to_string(
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("partners/groundspan/templates/NOTIFY_TEMPLATE_ID/schema.json"),
                )
                .unwrap(),
            ),
            ("templates/NOTIFY_TEMPLATE_ID/card.html.jinja", card.to_owned()),
        ]
        .into_iter()
        .map(|(path, text)| (std::path::PathBuf::from(path), text))
        .collect();
        bundle::from_files(&files).unwrap()
    };
    t.app
        .store
        .import_partner(&partner("<p>{{ metadata.packages[0].nosuchfield }}</p>"))
        .await
        .unwrap();
    let token = t.company_token(COMPANY, "broken", &[WRITE]);
    let response = t.post_alert(&token, &post_seed()).await;
    let body = expect_error(response, 400, "TEMPLATE_RENDER_FAILED").await;
    let problem = &body["errors"][0];
    let message = problem["errorMessage"].as_str().unwrap();
    assert!(message.contains("card.html.jinja"), "{message}");
    assert!(message.contains("undefined"), "{message}");
    assert_eq!(problem["details"]["templateId"], "NOTIFY_TEMPLATE_ID");
    assert_eq!(problem["details"]["templateVersion"], 1);
    assert!(
        t.app.store.outbox_after(0, 10).await.unwrap().is_empty(),
        "nothing stored"
    );
    assert_eq!(
        t.inbox_json(&t.seed_user_token(), "").await["items"],
        json!([])
    );
}
