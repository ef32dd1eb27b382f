//! What the alerts API refuses, and how: every missing field and every problem of a request at
//! once, each with its pointer; URLs off the partner's domains; unknown templates; expiries in
//! the past; a token that does not match the body; a partner unknown or over its rate limit;
//! metadata that the template's current version does not accept.

use serde_json::{Value, json};

use crate::{
    alerts_api::{created_id, owner},
    helpers::*,
};

crate::on_both_backends!(
    each_missing_required_field_is_reported_with_its_pointer,
    company_id_may_be_left_out_when_the_token_has_a_company,
    all_problems_of_a_request_are_reported_at_once,
    urls_must_be_https_on_the_partners_domains,
    an_unknown_template_is_400_at_template_id,
    an_expiry_in_the_past_is_refused,
    malformed_json_is_invalid_json,
    a_company_mismatch_is_403,
    an_application_id_other_than_the_tokens_is_403,
    an_unregistered_partner_is_refused,
    an_app_token_must_name_the_company_in_the_body,
    a_partner_over_its_rate_limit_gets_429_with_retry_after,
    metadata_accepted_before_is_checked_again_under_a_new_template_version,
    the_same_refused_metadata_is_refused_every_time,
    metadata_that_is_not_an_object_or_cannot_be_held_is_refused,
);

async fn each_missing_required_field_is_reported_with_its_pointer(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    for field in [
        "extRef",
        "userId",
        "createdAt",
        "metadata",
        "templateId",
        "msgType",
        "expiresAt",
    ] {
        let mut body = post_seed();
        body.as_object_mut().unwrap().remove(field);
        let response = t.post_alert(&token, &body).await;
        assert_eq!(response.status(), 400, "without {field}");
        let errors = error_list(response).await;
        assert!(
            errors.contains(&("MISSING_FIELD".into(), Some(format!("/{field}")))),
            "without {field}: {errors:?}"
        );
    }
}

async fn company_id_may_be_left_out_when_the_token_has_a_company(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut body = post_seed();
    body.as_object_mut().unwrap().remove("companyId");
    created_id(t.post_alert(&t.groundspan_token(), &body).await).await;
}

async fn all_problems_of_a_request_are_reported_at_once(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut body = post_seed();
    body.as_object_mut().unwrap().remove("userId");
    body["createdAt"] = json!("not a date");
    let variant = &mut body["metadata"]["packages"][0]["variants"][1];
    variant["price"]["amount"] = json!("680");
    variant.as_object_mut().unwrap().remove("variantId");
    body["metadata"]["partnerLogoUrl"] = json!("http://groundspan.com/logo.png");
    let response = t.post_alert(&t.groundspan_token(), &body).await;
    assert_eq!(response.status(), 400);
    let mut errors = error_list(response).await;
    errors.sort();
    let expected = [
        ("INVALID_FIELD", "/createdAt"),
        ("MISSING_FIELD", "/userId"),
        (
            "SCHEMA_VIOLATION",
            "/metadata/packages/0/variants/1/price/amount",
        ),
        (
            "SCHEMA_VIOLATION",
            "/metadata/packages/0/variants/1/variantId",
        ),
        ("URL_NOT_ALLOWED", "/metadata/partnerLogoUrl"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(c, f)| ((*c).to_owned(), Some((*f).to_owned())))
        .collect();
    assert_eq!(errors, expected);
}

async fn urls_must_be_https_on_the_partners_domains(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    for (pointer, url) in [
        (
            "/metadata/packages/0/variants/0/userActions/href",
            "https://evil.example/book",
        ),
        (
            "/metadata/packages/0/variants/0/variantLogoUrl",
            "javascript:alert(1)",
        ),
        (
            "/metadata/packages/1/variants/0/userActions/href",
            "http://concur.com/reserve",
        ),
    ] {
        let mut body = post_seed();
        *body.pointer_mut(pointer).unwrap() = json!(url);
        let errors = error_list(t.post_alert(&token, &body).await).await;
        assert_eq!(
            errors,
            [("URL_NOT_ALLOWED".to_owned(), Some(pointer.to_owned()))],
            "{url}"
        );
    }
}

async fn an_unknown_template_is_400_at_template_id(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut body = post_seed();
    body["templateId"] = json!("NO_SUCH_TEMPLATE");
    let errors = error_list(t.post_alert(&t.groundspan_token(), &body).await).await;
    assert_eq!(
        errors,
        [(
            "UNKNOWN_TEMPLATE".to_owned(),
            Some("/templateId".to_owned())
        )]
    );
}

async fn an_expiry_in_the_past_is_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut body = post_seed();
    body["expiresAt"] = json!("2025-12-31T23:59:59Z"); // the seed's own date, long past
    body["createdAt"] = json!("2025-08-19T10:00:00Z");
    let errors = error_list(t.post_alert(&t.groundspan_token(), &body).await).await;
    assert_eq!(
        errors,
        [("EXPIRES_IN_PAST".to_owned(), Some("/expiresAt".to_owned()))]
    );
}

async fn malformed_json_is_invalid_json(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let response = t
        .post_alert_text(&t.groundspan_token(), r#"{"extRef": "x", "#)
        .await;
    expect_error(response, 400, "INVALID_JSON").await;
}

async fn a_company_mismatch_is_403(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut body = post_seed();
    body["companyId"] = json!(OTHER_COMPANY);
    let error = expect_error(
        t.post_alert(&t.groundspan_token(), &body).await,
        403,
        "COMPANY_MISMATCH",
    )
    .await;
    assert_eq!(error["errors"][0]["details"]["field"], "/companyId");
}

async fn an_application_id_other_than_the_tokens_is_403(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut body = post_seed();
    body["applicationId"] = json!("someone-else");
    expect_error(
        t.post_alert(&t.groundspan_token(), &body).await,
        403,
        "APPLICATION_MISMATCH",
    )
    .await;
    body["applicationId"] = json!(GROUNDSPAN);
    created_id(t.post_alert(&t.groundspan_token(), &body).await).await;
}

async fn an_unregistered_partner_is_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.company_token(COMPANY, "not-registered", &[WRITE]);
    expect_error(
        t.post_alert(&token, &post_seed()).await,
        403,
        "UNKNOWN_PARTNER",
    )
    .await;
}

async fn an_app_token_must_name_the_company_in_the_body(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.token(maestro::auth::signing::TokenRequest {
        kind: maestro::auth::TokenKind::App,
        subject: GROUNDSPAN.into(),
        app_id: Some(GROUNDSPAN.into()),
        scopes: vec![WRITE.into()],
        company: None,
        roles: vec![],
        ttl_secs: 600,
    });
    let mut body = post_seed();
    created_id(t.post_alert(&token, &body).await).await;
    body.as_object_mut().unwrap().remove("companyId");
    body["extRef"] = json!("another");
    let errors = error_list(t.post_alert(&token, &body).await).await;
    assert_eq!(
        errors,
        [("MISSING_FIELD".to_owned(), Some("/companyId".to_owned()))]
    );
}

async fn a_partner_over_its_rate_limit_gets_429_with_retry_after(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.import_partner("limited", "[rate_limit]\nper_second = 1\nburst = 2\n")
        .await;
    let token = t.company_token(COMPANY, "limited", &[WRITE]);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let response = t.post_alert(&token, &post_seed()).await;
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").cloned();
            expect_error(response, 429, "RATE_LIMITED").await;
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert_eq!(&statuses[..2], [200, 200]);
    assert!(statuses.contains(&429), "{statuses:?}");
    let retry_after: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after));
    // Groundspan has no limit and is unaffected.
    created_id(t.post_alert(&t.groundspan_token(), &post_seed()).await).await;
}

async fn metadata_accepted_before_is_checked_again_under_a_new_template_version(backend: Backend) {
    // The catalogue reloads the partner on every request, so the new version is seen at once.
    let t = TestApp::spawn_with(backend, |settings| {
        settings.catalog_refresh = std::time::Duration::ZERO;
    })
    .await;
    t.import_partner("versioned", "").await;
    let token = t.company_token(COMPANY, "versioned", &[WRITE]);
    created_id(t.post_alert(&token, &post_seed()).await).await;

    t.import_partner_with_schema(
        "versioned",
        "",
        r#"{"type": "object", "required": ["bookingCode"]}"#,
    )
    .await;
    let errors = error_list(t.post_alert(&token, &post_seed()).await).await;
    assert_eq!(
        errors,
        [(
            "SCHEMA_VIOLATION".to_owned(),
            Some("/metadata/bookingCode".to_owned())
        )]
    );
}

async fn the_same_refused_metadata_is_refused_every_time(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    let mut bad = post_seed();
    *bad.pointer_mut("/metadata/partnerLogoUrl").unwrap() = json!("https://evil.example/x.png");
    for _ in 0..3 {
        let errors = error_list(t.post_alert(&token, &bad).await).await;
        assert_eq!(
            errors,
            [(
                "URL_NOT_ALLOWED".to_owned(),
                Some("/metadata/partnerLogoUrl".to_owned())
            )]
        );
    }
    // The same offer, valid, for two travellers: both received, each stored whole.
    let mut ids = Vec::new();
    for ext_ref in ["fan-out-1", "fan-out-2"] {
        let mut body = post_seed();
        body["extRef"] = json!(ext_ref);
        ids.push(created_id(t.post_alert(&token, &body).await).await);
    }
    for id in ids {
        let stored = t.app.store.alert(&owner(), &id).await.unwrap().unwrap();
        let payload: Value = serde_json::from_str(&stored.content.payload).unwrap();
        assert_eq!(payload["metadata"], post_seed()["metadata"]);
    }
}

async fn metadata_that_is_not_an_object_or_cannot_be_held_is_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    let mut body = post_seed();
    body["metadata"] = json!(["not", "an", "object"]);
    let errors = error_list(t.post_alert(&token, &body).await).await;
    assert_eq!(
        errors,
        [("INVALID_FIELD".to_owned(), Some("/metadata".to_owned()))]
    );

    // A number beyond what a 64-bit float holds is valid JSON syntax that the server refuses.
    let text =
        post_seed()
            .to_string()
            .replacen("\"metadata\":{", "\"metadata\":{\"huge\":1e400,", 1);
    assert!(text.contains("1e400"));
    let response = t.post_alert_text(&token, text).await;
    let body = expect_error(response, 400, "INVALID_FIELD").await;
    assert_eq!(body["errors"][0]["details"]["field"], "/metadata", "{body}");
    assert!(
        t.app.store.outbox_after(0, 10).await.unwrap().is_empty(),
        "nothing stored"
    );
}
