//! Hostile text gets the same client error on both backends: NUL and the other characters XML
//! forbids, anywhere a request carries text (body, path, query, token), duplicate members, and
//! answers bounded whatever the request held. PostgreSQL cannot hold U+0000; before the input
//! rule these were 500s there and successes on SQLite.

use maestro::{
    auth::{TokenKind, signing::TokenRequest},
    store::SnapshotKey,
};
use serde_json::{Value, json};

use crate::helpers::*;

/// The characters refused, as JSON escapes (NUL, the other C0 controls XML forbids, and the
/// two non-characters).
const FORBIDDEN: [&str; 5] = ["\\u0000", "\\u0008", "\\u000b", "\\u001f", "\\uffff"];

fn app_token(t: &TestApp) -> String {
    t.token(TokenRequest {
        kind: TokenKind::App,
        subject: "travel-core".into(),
        app_id: Some("travel-core".into()),
        scopes: vec!["maestro.events.publish".into()],
        company: None,
        roles: vec![],
        ttl_secs: 600,
    })
}

async fn nothing_was_stored(t: &TestApp) {
    assert!(
        t.app.store.outbox_after(0, 10).await.unwrap().is_empty(),
        "nothing stored"
    );
}

async fn forbidden_characters_in_an_alert_are_400_with_their_pointer(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    let mut seed = post_seed();
    seed["title"] = json!("Offers");
    let seed = seed.to_string();
    let at_key = |key: &str, text: &str| {
        seed.replacen(&format!("\"{key}\":\""), &format!("\"{key}\":\"{text}"), 1)
    };
    for forbidden in FORBIDDEN {
        for (text, pointer) in [
            (at_key("extRef", forbidden), "/extRef"),
            (at_key("userId", forbidden), "/userId"),
            (at_key("companyId", forbidden), "/companyId"),
            (at_key("title", forbidden), "/title"),
            (at_key("msgType", forbidden), "/msgType"),
            (
                at_key("partnerProvider", forbidden),
                "/metadata/partnerProvider",
            ),
            (
                at_key("packageTitle", forbidden),
                "/metadata/packages/0/packageTitle",
            ),
            (
                seed.replacen(
                    "\"metadata\":{",
                    &format!("\"metadata\":{{\"k{forbidden}\":1,"),
                    1,
                ),
                "/metadata/k",
            ),
        ] {
            assert!(
                text.contains(forbidden),
                "{pointer}: the probe is in the body"
            );
            let response = t.post_alert_text(&token, text).await;
            let body = expect_error(response, 400, "INVALID_FIELD").await;
            let field = body["errors"][0]["details"]["field"].as_str().unwrap();
            assert!(
                field.starts_with(pointer),
                "{forbidden} at {pointer}: {body}"
            );
            assert!(
                body["errors"][0]["errorMessage"]
                    .as_str()
                    .unwrap()
                    .contains("U+"),
                "{body}"
            );
        }
    }
    nothing_was_stored(&t).await;
    // Tab, line feed and carriage return are text.
    let mut fine = post_seed();
    fine["title"] = json!("Two lines\r\n\tand a tab");
    assert_eq!(t.post_alert(&token, &fine).await.status(), 200);
}

async fn an_update_by_id_with_a_hostile_id_or_body_is_400(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    let body = post_seed();
    for id in ["%00", "alt_%0B", "%EF%BF%BF"] {
        let response = t
            .client
            .put(t.url(&format!("/maestro/v4/alerts/{id}")))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let error = expect_error(response, 400, "INVALID_FIELD").await;
        assert_eq!(
            error["errors"][0]["details"]["parameter"], "alertId",
            "{id}"
        );
    }
    // Not UTF-8 once decoded: the same error format, not the framework's plain text.
    let response = t
        .client
        .put(t.url("/maestro/v4/alerts/%FF"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "INVALID_FIELD").await;
}

/// An update by extRef looks the extRef up in the store (on PostgreSQL, a join over arrays of
/// the batch's extRefs, which a NUL would break): a forbidden character is refused before.
async fn an_update_by_ext_ref_with_forbidden_characters_is_400(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    let alert = post_seed();
    assert_eq!(t.post_alert(&token, &alert).await.status(), 200);
    let seed = alert.to_string();
    let ext_ref = alert["extRef"].as_str().unwrap();
    for forbidden in FORBIDDEN {
        let text = seed.replacen(ext_ref, &format!("{ext_ref}{forbidden}"), 1);
        assert!(text.contains(forbidden), "the probe is in the body");
        let response = t
            .send_text(reqwest::Method::PUT, "/maestro/v4/alerts", &token, text)
            .await;
        let body = expect_error(response, 400, "INVALID_FIELD").await;
        assert_eq!(body["errors"][0]["details"]["field"], "/extRef", "{body}");
    }
    // The alert itself is still there to update.
    let mut update = alert.clone();
    update["title"] = json!("Updated");
    assert_eq!(t.put_alert(&token, None, &update).await.status(), 200);
}

async fn hostile_paths_and_queries_of_the_inbox_and_admin_are_400(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let user = t.seed_user_token();
    for (query, parameter) in [
        ("?cursor=AA", "cursor"),
        ("?cursor=%00", "cursor"),
        ("?cursor=YWx0XzE", "cursor"),
        ("?state=%00", "state"),
        ("?limit=1%00", "limit"),
    ] {
        let response = t.inbox(&user, query).await;
        let error = expect_error(response, 400, "INVALID_FIELD").await;
        assert_eq!(
            error["errors"][0]["details"]["parameter"], parameter,
            "{query}"
        );
    }
    for action in ["read", "dismiss", "snooze"] {
        let response = t.mark(&user, "alt_%00", action).await;
        let error = expect_error(response, 400, "INVALID_FIELD").await;
        assert_eq!(error["errors"][0]["details"]["parameter"], "alertId");
    }
    for query in ["?lastEventId=%00", "?lastEventId=1%00"] {
        let response = t
            .client
            .get(t.url(&format!("/maestro/v4/inbox/stream{query}")))
            .bearer_auth(&user)
            .send()
            .await
            .unwrap();
        let error = expect_error(response, 400, "INVALID_FIELD").await;
        assert_eq!(
            error["errors"][0]["details"]["parameter"], "lastEventId",
            "{query}"
        );
    }
    // A snooze's instant with a NUL in it, for an alert of the user: refused, nothing changed.
    let created = t.post_alert(&t.groundspan_token(), &post_seed()).await;
    assert_eq!(created.status(), 200);
    let alert_id = created.json::<Value>().await.unwrap()["alertId"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = t
        .client
        .post(t.url(&format!("/maestro/v4/inbox/{alert_id}/snooze")))
        .bearer_auth(&user)
        .header("Content-Type", "application/json")
        .body(r#"{"until":"2030-01-01T00:00:00Z\u0000"}"#)
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "INVALID_FIELD").await;
    let inbox: Value = t.inbox(&user, "").await.json().await.unwrap();
    assert_eq!(inbox["items"][0]["snoozedUntil"], Value::Null, "{inbox}");
    let admin = t.company_token(COMPANY, GROUNDSPAN, &["maestro.admin"]);
    for (path, parameter) in [
        ("/admin/v1/deliveries/msg_%00", "deliveryId"),
        ("/admin/v1/deliveries?partner=%00", "partner"),
        ("/admin/v1/deliveries?status=pending%1F", "status"),
        ("/admin/v1/deliveries?limit=many", "query"),
    ] {
        let response = t
            .client
            .get(t.url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        let error = expect_error(response, 400, "INVALID_FIELD").await;
        assert_eq!(
            error["errors"][0]["details"]["parameter"], parameter,
            "{path}"
        );
    }
}

async fn hostile_legacy_paths_and_queries_are_400_in_xml(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.company_token(COMPANY, GROUNDSPAN, &[]);
    for path in [
        "/api/travel/trip/v1.1/T%00",
        "/api/travelprofile/v2.0/profile?userid_type=login&userid_value=a%00b",
        "/api/travelprofile/v2.0/profile?userid_type=login&userid_value=%EF%BF%BE",
    ] {
        let response = t
            .client
            .get(t.url(path))
            .header("Authorization", format!("OAuth {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(response.headers()["content-type"], "application/xml");
        let text = response.text().await.unwrap();
        assert!(
            text.starts_with("<?xml") && text.contains("<Message>"),
            "{text}"
        );
        assert!(maestro::input::forbidden_char(&text).is_none(), "{text:?}");
    }
}

async fn company_events_refuse_what_xml_cannot_carry(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let producer = app_token(&t);
    let event = |trip: &str, login: &str, object: &str| {
        format!(
            r#"{{"type":"itinerary","eventType":"CREATE","companyId":"{COMPANY}",
                "userLogin":"{login}","tripId":"{trip}","occurredAt":"2026-01-01T00:00:00Z",
                "object":{object}}}"#
        )
    };
    for forbidden in FORBIDDEN {
        for (text, pointer) in [
            (event(&format!("T{forbidden}"), "cm", "{}"), "/tripId"),
            (event("T-1", &format!("cm{forbidden}"), "{}"), "/userLogin"),
            (
                event(
                    "T-1",
                    "cm",
                    &format!(r#"{{"Trip":{{"Name":"P{forbidden}"}}}}"#),
                ),
                "/object/Trip/Name",
            ),
            (
                event(
                    "T-1",
                    "cm",
                    &format!(r#"{{"Segments":["ok","x{forbidden}"]}}"#),
                ),
                "/object/Segments/1",
            ),
        ] {
            let response = t
                .send_text(
                    reqwest::Method::POST,
                    "/internal/v1/company-events",
                    &producer,
                    text,
                )
                .await;
            let error = expect_error(response, 400, "INVALID_FIELD").await;
            assert_eq!(
                error["errors"][0]["details"]["field"], pointer,
                "{forbidden}"
            );
        }
    }
    let stored = t
        .app
        .store
        .snapshot(&COMPANY.to_lowercase(), &SnapshotKey::Trip("T-1".into()))
        .await
        .unwrap();
    assert_eq!(stored, None, "no refused event was recorded");
}

async fn a_member_named_twice_is_refused_not_last_wins(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let seed = post_seed().to_string();
    let twice = seed.replacen("{", "{\"userId\":\"someone-else\",", 1);
    let error = expect_error(
        t.post_alert_text(&t.groundspan_token(), twice).await,
        400,
        "INVALID_JSON",
    )
    .await;
    assert_eq!(error["errors"][0]["details"]["field"], "/userId", "{error}");
    let nested = seed.replacen(
        "\"metadata\":{",
        "\"metadata\":{\"partnerProvider\":\"A\",",
        1,
    );
    let error = expect_error(
        t.post_alert_text(&t.groundspan_token(), nested).await,
        400,
        "INVALID_JSON",
    )
    .await;
    assert_eq!(
        error["errors"][0]["details"]["field"],
        "/metadata/partnerProvider"
    );
    let event = r#"{"type":"fop","type":"itinerary","eventType":"CREATE","companyId":"c",
                    "occurredAt":"2026-01-01T00:00:00Z"}"#;
    let response = t
        .send_text(
            reqwest::Method::POST,
            "/internal/v1/company-events",
            &app_token(&t),
            event,
        )
        .await;
    let error = expect_error(response, 400, "INVALID_JSON").await;
    assert_eq!(error["errors"][0]["details"]["field"], "/type");
    nothing_was_stored(&t).await;
}

async fn a_token_whose_claims_hold_nul_or_huge_ids_is_401(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    for (claim, value) in [
        ("sub", json!(format!("{COMPANY}\u{0}"))),
        ("concur.appId", json!("groundspan\u{0}")),
        // Longer than any id a body may carry: PostgreSQL could not index it.
        ("sub", json!("c".repeat(4000))),
    ] {
        let mut claims = claims(COMPANY, &[WRITE]);
        claims[claim] = value;
        let token = external_token(jsonwebtoken::Algorithm::RS256, "ext-rsa-1", &claims);
        let response = t.post_alert(&token, &post_seed()).await;
        expect_error(response, 401, "INVALID_TOKEN").await;
    }
}

async fn an_answer_stays_small_however_many_problems_the_request_has(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut body = post_seed();
    let metadata = body["metadata"].as_object_mut().unwrap();
    for i in 0..20_000 {
        metadata.insert(format!("u{i}"), Value::from(0));
    }
    let text = body.to_string();
    assert!(text.len() > 200_000 && text.len() < 256 * 1024);
    let response = t.post_alert_text(&t.groundspan_token(), text).await;
    assert_eq!(response.status(), 400);
    let answer = response.text().await.unwrap();
    assert!(answer.len() < 64 * 1024, "{} bytes", answer.len());
    let errors: Value = serde_json::from_str(&answer).unwrap();
    let errors = errors["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 51);
    assert_eq!(errors[0]["errorCode"], "SCHEMA_VIOLATION");
    let last = errors.last().unwrap();
    assert_eq!(last["errorCode"], "TOO_MANY_ERRORS");
    assert!(
        last["details"]["omitted"].as_u64().unwrap() >= 19_950,
        "{last}"
    );
}

crate::on_both_backends!(
    forbidden_characters_in_an_alert_are_400_with_their_pointer,
    an_update_by_id_with_a_hostile_id_or_body_is_400,
    an_update_by_ext_ref_with_forbidden_characters_is_400,
    hostile_paths_and_queries_of_the_inbox_and_admin_are_400,
    hostile_legacy_paths_and_queries_are_400_in_xml,
    company_events_refuse_what_xml_cannot_carry,
    a_member_named_twice_is_refused_not_last_wins,
    a_token_whose_claims_hold_nul_or_huge_ids_is_401,
    an_answer_stays_small_however_many_problems_the_request_has,
);
