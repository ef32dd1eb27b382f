//! Probes, metrics, the OpenAPI and AsyncAPI documents, and the headers every response carries.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::helpers::*;

fn assert_envelope(response: &reqwest::Response, what: &str) {
    let headers = response.headers();
    let id = headers
        .get("concur-correlationid")
        .unwrap_or_else(|| panic!("{what}: no correlation id"));
    uuid::Uuid::parse_str(id.to_str().unwrap()).unwrap_or_else(|_| panic!("{what}: not a UUID"));
    assert_eq!(
        headers["content-type"], "application/json;charset=UTF-8",
        "{what}"
    );
    assert_eq!(headers["cache-control"], "no-cache, private", "{what}");
    let date = headers
        .get("date")
        .unwrap_or_else(|| panic!("{what}: no Date"));
    httpdate_like(date.to_str().unwrap(), what);
}

/// An IMF-fixdate such as `Sun, 22 Nov 2026 11:41:29 GMT`.
fn httpdate_like(value: &str, what: &str) {
    assert!(
        value.ends_with(" GMT") && value.len() == 29,
        "{what}: bad Date {value:?}"
    );
}

#[tokio::test]
async fn every_response_carries_the_common_headers_errors_included() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let token = t.groundspan_token();
    let cases = [
        ("200", t.post_alert(&token, &post_seed()).await),
        ("400", t.post_alert(&token, &serde_json::json!({})).await),
        ("401", t.post_alert("nope", &post_seed()).await),
        (
            "404 route",
            t.client.get(t.url("/no/such/route")).send().await.unwrap(),
        ),
        (
            "404 alert",
            t.put_alert(&token, Some("alt_x"), &post_seed()).await,
        ),
        (
            "405",
            t.client
                .delete(t.url("/maestro/v4/alerts"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "405 GET",
            t.client
                .get(t.url("/maestro/v4/alerts"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "415",
            t.client
                .post(t.url("/maestro/v4/alerts"))
                .header("Authorization", format!("Bearer {token}"))
                .body("x")
                .send()
                .await
                .unwrap(),
        ),
        (
            "healthz",
            t.client.get(t.url("/healthz")).send().await.unwrap(),
        ),
    ];
    for (what, response) in &cases {
        assert_envelope(response, what);
    }
    let (_, not_found) = cases.into_iter().nth(3).unwrap();
    expect_error(not_found, 404, "ROUTE_NOT_FOUND").await;
    let response = t
        .client
        .delete(t.url("/maestro/v4/alerts"))
        .send()
        .await
        .unwrap();
    expect_error(response, 405, "METHOD_NOT_ALLOWED").await;
}

#[tokio::test]
async fn a_valid_correlation_id_is_echoed_and_anything_else_replaced() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let mine = "5512c7be-3fab-4d65-ae69-8a74a04a0c7f";
    let response = t
        .client
        .get(t.url("/healthz"))
        .header("concur-correlationid", mine)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["concur-correlationid"], mine);
    let response = t
        .client
        .get(t.url("/healthz"))
        .header("concur-correlationid", "not-a-uuid")
        .send()
        .await
        .unwrap();
    let echoed = response.headers()["concur-correlationid"].to_str().unwrap();
    assert_ne!(echoed, "not-a-uuid");
    uuid::Uuid::parse_str(echoed).unwrap();
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let response = t.client.get(t.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], status);
    }
}

#[tokio::test]
async fn metrics_count_requests_latencies_and_alert_outcomes() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let token = t.groundspan_token();
    assert_eq!(t.post_alert(&token, &post_seed()).await.status(), 200);
    let mut bad = post_seed();
    bad.as_object_mut().unwrap().remove("userId");
    assert_eq!(t.post_alert(&token, &bad).await.status(), 400);
    assert_eq!(t.post_alert("bad-token", &post_seed()).await.status(), 401);

    let response = t.client.get(t.url("/metrics")).send().await.unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for line in [
        r#"maestro_http_requests_total{method="POST",route="/maestro/v4/alerts",status="200"} 1"#,
        r#"maestro_http_requests_total{method="POST",route="/maestro/v4/alerts",status="400"} 1"#,
        r#"maestro_alerts_accepted_total{operation="create",partner="groundspan"} 1"#,
        r#"maestro_alerts_rejected_total{operation="create",code="MISSING_FIELD",partner="groundspan"} 1"#,
        // No token verified, so no partner to label it with.
        r#"maestro_alerts_rejected_total{operation="create",code="INVALID_TOKEN",partner=""} 1"#,
        r#"maestro_http_request_duration_seconds_count{method="POST",route="/maestro/v4/alerts"} 3"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let doc: Value = t.get_json("/openapi.json").await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    assert_eq!(
        documented,
        [
            "DELETE /app-mgmt/v0/connections/{appId}",
            "DELETE /maestro/v4/alerts/{alertId}",
            "GET /admin/v1/deliveries",
            "GET /admin/v1/deliveries/{deliveryId}",
            "GET /app-mgmt/v0/connections",
            "GET /healthz",
            "GET /maestro/v4/inbox",
            "GET /maestro/v4/inbox/stream",
            "GET /maestro/v4/templates",
            "GET /maestro/v4/templates/{templateId}",
            "GET /oauth2/v0/jwks",
            "GET /readyz",
            "POST /admin/v1/deliveries/{deliveryId}/replay",
            "POST /app-mgmt/v0/connections",
            "POST /internal/v1/company-events",
            "POST /maestro/v4/alerts",
            "POST /maestro/v4/alerts/preview",
            "POST /maestro/v4/inbox/read-all",
            "POST /maestro/v4/inbox/{alertId}/dismiss",
            "POST /maestro/v4/inbox/{alertId}/read",
            "POST /maestro/v4/inbox/{alertId}/snooze",
            "POST /oauth2/v0/token",
            "PUT /maestro/v4/alerts",
            "PUT /maestro/v4/alerts/{alertId}",
        ]
    );
    // Every documented operation is served: it answers neither 404-no-route nor 405.
    for operation in &documented {
        let (method, path) = operation.split_once(' ').unwrap();
        let url = t.url(
            &path
                .replace("{alertId}", "alt_x")
                .replace("{deliveryId}", "msg_x")
                .replace("{appId}", "groundspan")
                .replace("{templateId}", "NOTIFY_TEMPLATE_ID"),
        );
        let response = t
            .client
            .request(method.parse().unwrap(), url)
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), 405, "{operation}");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(
            body["errors"][0]["errorCode"], "ROUTE_NOT_FOUND",
            "{operation}"
        );
    }
    // The partner-facing operations of SPEC §4.1 are named, and each answer described.
    for (method, path, operation_id) in [
        ("delete", "/maestro/v4/alerts/{alertId}", "withdrawAlert"),
        ("post", "/maestro/v4/alerts/preview", "previewAlert"),
        ("get", "/maestro/v4/templates", "listTemplates"),
        ("get", "/maestro/v4/templates/{templateId}", "getTemplate"),
    ] {
        let operation = &doc["paths"][path][method];
        assert_eq!(operation["operationId"], operation_id, "{method} {path}");
        for (status, response) in operation["responses"].as_object().unwrap() {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} {status}"
            );
        }
    }
    // And the document the server serves is the one the code declares.
    assert_eq!(doc, maestro::http::openapi(&t.app.settings.public_url));
}

#[tokio::test]
async fn the_document_is_readable_in_a_browser_and_names_this_server() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let doc: Value = t.get_json("/openapi.json").await;
    assert_eq!(doc["servers"][0]["url"], t.app.settings.public_url);
    let codes = doc["components"]["schemas"]["ErrorItem"]["properties"]["errorCode"]["enum"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(codes, maestro::ErrorCode::ALL.len());
    // Every answer of every operation has a description and the correlation header.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(operation["operationId"].is_string(), "{method} {path}");
            for (status, response) in operation["responses"].as_object().unwrap() {
                let at = format!("{method} {path} {status}");
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{at}"
                );
                assert!(
                    response["headers"]["concur-correlationid"].is_object(),
                    "{at}"
                );
            }
        }
    }
    let page = t.client.get(t.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("createAlert") && html.contains("api-reference"),
        "the document is in the page"
    );
}

#[test]
fn the_error_catalogue_is_documented() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ERRORS.md")).unwrap();
    for code in maestro::ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.http_status());
        assert!(
            doc.contains(&row),
            "docs/ERRORS.md lacks the row starting {row}"
        );
    }
}

#[tokio::test]
async fn a_worker_only_instance_serves_probes_and_metrics_but_no_api() {
    let t = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.role = maestro::config::Role::Worker;
    })
    .await;
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let response = t.client.get(t.url(probe)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{probe}");
    }
    let api = t.post_alert(&t.groundspan_token(), &post_seed()).await;
    expect_error(api, 404, "ROUTE_NOT_FOUND").await;
}

#[tokio::test]
async fn the_asyncapi_document_is_valid_asyncapi_3_and_names_no_secret() {
    let t = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.nats.url = Some(maestro::config::Secret::new(
            "nats://app:s3cret@127.0.0.1:4222",
        ));
    })
    .await;
    let response = t.client.get(t.url("/asyncapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains("s3cret") && !text.contains("app:"), "{text}");
    let doc: Value = serde_json::from_str(&text).unwrap();

    // The AsyncAPI 3.0.0 JSON Schema, from the AsyncAPI Initiative's `@asyncapi/specs` 6.11.1
    // (Apache-2.0), kept as a fixture so that the check runs offline.
    let schema: Value = serde_json::from_str(&fixture("asyncapi-3.0.0.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let problems: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");

    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["servers"]["nats1"]["host"], "127.0.0.1:4222");
    let addresses: BTreeMap<&str, &str> = doc["channels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, c)| (name.as_str(), c["address"].as_str().unwrap()))
        .collect();
    assert_eq!(
        addresses,
        BTreeMap::from([
            ("alertCreated", "maestro.alerts.{partner}.alert.created"),
            ("alertExpired", "maestro.alerts.{partner}.alert.expired"),
            ("alertUpdated", "maestro.alerts.{partner}.alert.updated"),
            ("alertWithdrawn", "maestro.alerts.{partner}.alert.withdrawn"),
            ("companyEvents", "maestro.company.{type}"),
        ])
    );
    // Every operation receives on a channel of the document, and every reference resolves.
    for (name, operation) in doc["operations"].as_object().unwrap() {
        assert_eq!(operation["action"], "receive", "{name}");
        let channel = operation["channel"]["$ref"].as_str().unwrap();
        assert!(doc.pointer(&channel[1..]).is_some(), "{name}: {channel}");
    }
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = &reference[..reference.find('"').unwrap()];
        assert!(doc.pointer(&target[1..]).is_some(), "{target} resolves");
    }
}
