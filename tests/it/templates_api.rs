//! Discovery (SPEC §4.1): a partner reads its own templates and their metadata schemas.

use std::path::PathBuf;

use maestro::partners::bundle;
use reqwest::Response;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{helpers::*, inbox_helpers::INBOX};

crate::on_both_backends!(
    a_partner_discovers_its_own_templates_with_their_schemas,
    a_new_template_version_is_discovered_with_its_date,
    another_partners_template_or_an_unknown_one_is_404,
    discovery_is_authorised_like_a_post_but_spends_no_rate_limit,
);

async fn get(t: &TestApp, token: &str, path: &str) -> Response {
    t.client
        .get(t.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn get_json(t: &TestApp, token: &str, path: &str) -> Value {
    let response = get(t, token, path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

fn groundspan_schema() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("partners/groundspan/templates/NOTIFY_TEMPLATE_ID/schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn updated_at(template: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(template["updatedAt"].as_str().unwrap(), &Rfc3339).unwrap()
}

/// Registers a partner whose one template has an id no other partner uses.
async fn import_with_template(t: &TestApp, partner: &str, template_id: &str) {
    let files = [
        (
            "partner.toml".to_owned(),
            format!("id = \"{partner}\"\nname = \"{partner}\"\nallowed_url_domains = [\"example.com\"]\n"),
        ),
        (
            format!("templates/{template_id}/schema.json"),
            r#"{"type": "object", "required": ["code"]}"#.to_owned(),
        ),
    ]
    .into_iter()
    .map(|(path, text)| (PathBuf::from(path), text))
    .collect();
    let import = bundle::from_files(&files).unwrap();
    t.app.store.import_partner(&import).await.unwrap();
}

async fn a_partner_discovers_its_own_templates_with_their_schemas(backend: Backend) {
    let started = OffsetDateTime::now_utc();
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    let listed = get_json(&t, &token, "/maestro/v4/templates").await;
    let templates = listed["templates"].as_array().unwrap();
    assert_eq!(templates.len(), 1, "{listed}");
    let template = &templates[0];
    assert_eq!(template["templateId"], "NOTIFY_TEMPLATE_ID");
    assert_eq!(template["version"], 1);
    assert_eq!(
        template["schema"],
        groundspan_schema(),
        "the schema as JSON, as written"
    );
    let imported = updated_at(template);
    assert!(
        imported >= started - time::Duration::seconds(1) && imported <= OffsetDateTime::now_utc(),
        "imported at the first start: {imported}"
    );

    let one = get_json(&t, &token, "/maestro/v4/templates/NOTIFY_TEMPLATE_ID").await;
    assert_eq!(&one, template);
}

async fn a_new_template_version_is_discovered_with_its_date(backend: Backend) {
    // The catalogue reloads the partner on every request, so the new version is seen at once.
    let t = TestApp::spawn_with(backend, |settings| {
        settings.catalog_refresh = std::time::Duration::ZERO;
    })
    .await;
    t.import_partner("versioned", "").await;
    let token = t.company_token(COMPANY, "versioned", &[WRITE]);
    let path = "/maestro/v4/templates/NOTIFY_TEMPLATE_ID";
    let first = get_json(&t, &token, path).await;
    assert_eq!(first["version"], 1);

    let schema = r#"{"type": "object", "required": ["bookingCode"]}"#;
    t.import_partner_with_schema("versioned", "", schema).await;
    let second = get_json(&t, &token, path).await;
    assert_eq!(second["version"], 2);
    assert_eq!(
        second["schema"],
        json!({"type": "object", "required": ["bookingCode"]})
    );
    assert!(updated_at(&second) >= updated_at(&first));
    let listed = get_json(&t, &token, "/maestro/v4/templates").await;
    assert_eq!(
        listed["templates"],
        json!([second]),
        "the latest version only"
    );
}

async fn another_partners_template_or_an_unknown_one_is_404(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    import_with_template(&t, "other", "OTHERS_ONLY").await;
    let mine = t.groundspan_token();
    for path in [
        "/maestro/v4/templates/OTHERS_ONLY",
        "/maestro/v4/templates/NO_SUCH_TEMPLATE",
    ] {
        let body = expect_error(get(&t, &mine, path).await, 404, "UNKNOWN_TEMPLATE").await;
        assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
    }
    let listed = get_json(&t, &mine, "/maestro/v4/templates").await;
    let ids: Vec<&str> = listed["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|template| template["templateId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["NOTIFY_TEMPLATE_ID"]);

    let theirs = t.company_token(COMPANY, "other", &[WRITE]);
    let listed = get_json(&t, &theirs, "/maestro/v4/templates").await;
    assert_eq!(listed["templates"][0]["templateId"], "OTHERS_ONLY");
    assert_eq!(
        listed["templates"][0]["schema"],
        json!({"type": "object", "required": ["code"]})
    );
    expect_error(
        get(&t, &theirs, "/maestro/v4/templates/NOTIFY_TEMPLATE_ID").await,
        404,
        "UNKNOWN_TEMPLATE",
    )
    .await;
}

async fn discovery_is_authorised_like_a_post_but_spends_no_rate_limit(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    for path in [
        "/maestro/v4/templates",
        "/maestro/v4/templates/NOTIFY_TEMPLATE_ID",
    ] {
        let anonymous = t.client.get(t.url(path)).send().await.unwrap();
        expect_error(anonymous, 401, "INVALID_TOKEN").await;
        let unscoped = t.company_token(COMPANY, GROUNDSPAN, &[INBOX]);
        expect_error(get(&t, &unscoped, path).await, 403, "INSUFFICIENT_SCOPE").await;
        let unregistered = t.company_token(COMPANY, "not-registered", &[WRITE]);
        expect_error(get(&t, &unregistered, path).await, 403, "UNKNOWN_PARTNER").await;
    }

    // A partner allowed two requests at once reads its templates at will and can still post.
    t.import_partner("limited", "[rate_limit]\nper_second = 1\nburst = 2\n")
        .await;
    let limited = t.company_token(COMPANY, "limited", &[WRITE]);
    for _ in 0..10 {
        get_json(&t, &limited, "/maestro/v4/templates").await;
    }
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(t.post_alert(&limited, &post_seed()).await.status().as_u16());
    }
    assert_eq!(&statuses[..2], [200, 200], "{statuses:?}");
    assert!(statuses.contains(&429), "the limit is there: {statuses:?}");
}
