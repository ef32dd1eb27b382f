//! Withdrawal (SPEC §4.1) as a partner and an inbox user see it: `DELETE
//! /maestro/v4/alerts/{alertId}`.

use maestro::store::{EVENT_ALERT_CREATED, EVENT_ALERT_EXPIRED, EVENT_ALERT_WITHDRAWN};
use reqwest::Response;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::{helpers::*, inbox_helpers::*};

crate::on_both_backends!(
    a_withdrawal_answers_withdrawn_and_a_repeat_answers_the_same,
    a_withdrawn_alert_leaves_the_inbox_at_once_and_the_stream_is_told,
    a_withdrawn_alert_cannot_be_updated_and_keeps_its_ext_ref,
    only_the_partners_own_alert_of_the_tokens_company_is_withdrawn,
    withdrawing_is_authorised_from_the_token_like_a_post,
    a_withdrawn_alert_is_purged_after_the_retention_without_an_expiry_event,
);

#[tokio::test]
async fn the_inbox_page_drops_a_withdrawn_card_and_reloads_on_the_event() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let id = t.create_alert(&post_seed()).await;
    let cookie = t.sign_in(SEED_USER, COMPANY).await;
    let cards = || async {
        t.client
            .get(t.url("/inbox/cards"))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(cards().await.contains(&id));
    assert_eq!(withdraw(&t, &t.groundspan_token(), &id).await.status(), 200);
    assert!(!cards().await.contains(&id));
    // The page reloads its list on the stream's events, this one included.
    let script = t
        .client
        .get(t.url("/inbox/assets/inbox.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.contains("'alert.withdrawn'"), "{script}");
}

async fn withdraw(t: &TestApp, token: &str, alert_id: &str) -> Response {
    t.client
        .delete(t.url(&format!("/maestro/v4/alerts/{alert_id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The outbox events of one alert, oldest first.
async fn events_of(t: &TestApp, alert_id: &str) -> Vec<String> {
    t.app
        .store
        .outbox_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.alert_id == alert_id)
        .map(|e| e.event_type)
        .collect()
}

async fn a_withdrawal_answers_withdrawn_and_a_repeat_answers_the_same(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let id = t.create_alert(&post_seed()).await;
    let token = t.groundspan_token();

    let response = withdraw(&t, &token, &id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"alertId": id, "status": "withdrawn", "message": "Alert withdrawn"})
    );
    let again = withdraw(&t, &token, &id).await;
    assert_eq!(again.status(), 200, "a repeat is no error");
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        json!({"alertId": id, "status": "withdrawn", "message": "Alert already withdrawn"})
    );
    assert_eq!(
        events_of(&t, &id).await,
        [EVENT_ALERT_CREATED, EVENT_ALERT_WITHDRAWN],
        "one event, none for the repeat"
    );
    let metric = r#"maestro_alerts_accepted_total{operation="withdraw",partner="groundspan"} 2"#;
    assert!(t.metrics().await.lines().any(|l| l == metric), "{metric}");
}

async fn a_withdrawn_alert_leaves_the_inbox_at_once_and_the_stream_is_told(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let user = t.seed_user_token();
    let sold_out = t.create_alert(&post_seed()).await;
    let other = t.create_alert(&post_seed()).await;
    assert_eq!(t.inbox_json(&user, "").await["unreadCount"], 2);
    // What is in the outbox now is history for the stream about to connect.
    t.app.inbox_feed.run_once().await.unwrap();
    let mut stream = t.stream(&user).await;

    assert_eq!(
        withdraw(&t, &t.groundspan_token(), &sold_out)
            .await
            .status(),
        200
    );
    for query in ["", "?state=unread"] {
        let inbox = t.inbox_json(&user, query).await;
        let ids: Vec<&str> = inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["alertId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [other.as_str()], "{query}");
        assert_eq!(inbox["unreadCount"], 1, "{query}");
    }
    for action in ["read", "dismiss"] {
        expect_error(
            t.mark(&user, &sold_out, action).await,
            404,
            "ALERT_NOT_FOUND",
        )
        .await;
    }

    t.app.inbox_feed.run_once().await.unwrap();
    let (name, data) = stream.next().await;
    assert_eq!(name, EVENT_ALERT_WITHDRAWN);
    assert_eq!(
        data,
        json!({"type": "alert.withdrawn", "alertId": sold_out, "item": null, "unreadCount": 1})
    );
}

async fn a_withdrawn_alert_cannot_be_updated_and_keeps_its_ext_ref(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    let body = post_seed();
    let id = t.create_alert(&body).await;
    assert_eq!(withdraw(&t, &token, &id).await.status(), 200);

    let mut changed = body.clone();
    changed["metadata"]["packages"][0]["variants"][0]["price"]["amount"] = json!(399.0);
    for (alert_id, body) in [
        (Some(id.as_str()), &changed),
        (None, &changed),
        (Some(id.as_str()), &body),
    ] {
        let error = expect_error(
            t.put_alert(&token, alert_id, body).await,
            409,
            "ALERT_WITHDRAWN",
        )
        .await;
        assert_eq!(error["errors"][0]["details"]["alertId"], id.as_str());
    }

    // Its extRef stays taken: a retry of its POST is answered with the alert as it now is, and
    // other content is a conflict; neither brings it back.
    let retry = t.post_alert(&token, &body).await;
    assert_eq!(retry.status(), 200);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["alertId"], id.as_str());
    assert_eq!(retry["status"], "withdrawn");
    let error = expect_error(t.post_alert(&token, &changed).await, 409, "ALERT_EXISTS").await;
    assert_eq!(error["errors"][0]["details"]["alertId"], id.as_str());
    assert_eq!(error["errors"][0]["details"]["field"], "/extRef");

    assert_eq!(t.app.store.alert_revisions(&id).await.unwrap().len(), 1);
    assert_eq!(
        events_of(&t, &id).await,
        [EVENT_ALERT_CREATED, EVENT_ALERT_WITHDRAWN]
    );
    assert_eq!(
        t.inbox_json(&t.seed_user_token(), "").await["items"],
        json!([])
    );
}

async fn only_the_partners_own_alert_of_the_tokens_company_is_withdrawn(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.import_partner("otherpartner", "").await;
    let id = t.create_alert(&post_seed()).await;

    let other_company = t.company_token(OTHER_COMPANY, GROUNDSPAN, &[WRITE]);
    let other_partner = t.company_token(COMPANY, "otherpartner", &[WRITE]);
    for token in [&other_company, &other_partner] {
        expect_error(withdraw(&t, token, &id).await, 404, "ALERT_NOT_FOUND").await;
    }
    let mine = t.groundspan_token();
    let unknown = format!("alt_{}", "0".repeat(32));
    for nothing in [
        unknown.as_str(),
        "not-an-alert",
        "alt_x",
        &id.to_uppercase(),
    ] {
        expect_error(withdraw(&t, &mine, nothing).await, 404, "ALERT_NOT_FOUND").await;
    }
    assert_eq!(
        t.inbox_json(&t.seed_user_token(), "").await["items"][0]["alertId"],
        id.as_str(),
        "still in the inbox"
    );
    assert_eq!(events_of(&t, &id).await, [EVENT_ALERT_CREATED]);

    // A token without a company (an app token) acts for the partner in every company.
    let app = t.token(maestro::auth::signing::TokenRequest {
        kind: maestro::auth::TokenKind::App,
        subject: GROUNDSPAN.into(),
        app_id: Some(GROUNDSPAN.into()),
        scopes: vec![WRITE.into()],
        company: None,
        roles: vec![],
        ttl_secs: 600,
    });
    let response = withdraw(&t, &app, &id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["message"],
        "Alert withdrawn"
    );
}

async fn withdrawing_is_authorised_from_the_token_like_a_post(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let id = t.create_alert(&post_seed()).await;

    let anonymous = t
        .client
        .delete(t.url(&format!("/maestro/v4/alerts/{id}")))
        .send()
        .await
        .unwrap();
    expect_error(anonymous, 401, "INVALID_TOKEN").await;
    let unscoped = t.company_token(COMPANY, GROUNDSPAN, &[INBOX]);
    let response = withdraw(&t, &unscoped, &id).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="maestro", error="insufficient_scope""#
    );
    expect_error(response, 403, "INSUFFICIENT_SCOPE").await;
    let unregistered = t.company_token(COMPANY, "not-registered", &[WRITE]);
    expect_error(
        withdraw(&t, &unregistered, &id).await,
        403,
        "UNKNOWN_PARTNER",
    )
    .await;
    assert_eq!(events_of(&t, &id).await, [EVENT_ALERT_CREATED]);

    // A withdrawal is a write: it takes from the partner's rate limit like a POST.
    t.import_partner("limited", "[rate_limit]\nper_second = 1\nburst = 2\n")
        .await;
    let limited = t.company_token(COMPANY, "limited", &[WRITE]);
    let response = t.post_alert(&limited, &post_seed()).await;
    let limited_id = response.json::<Value>().await.unwrap()["alertId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(withdraw(&t, &limited, &limited_id).await.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

async fn a_withdrawn_alert_is_purged_after_the_retention_without_an_expiry_event(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let expires_at = (OffsetDateTime::now_utc() + Duration::hours(1))
        .replace_millisecond(0)
        .unwrap();
    let mut body = post_seed();
    body["expiresAt"] = json!(rfc3339(expires_at));
    let id = t.create_alert(&body).await;
    assert_eq!(withdraw(&t, &t.groundspan_token(), &id).await.status(), 200);

    let swept = t.app.sweeper.run_once(expires_at).await.unwrap();
    assert_eq!(swept.expired, 1, "marked, so that it is purged in turn");
    assert!(
        !events_of(&t, &id)
            .await
            .contains(&EVENT_ALERT_EXPIRED.to_owned()),
        "its last event stays alert.withdrawn"
    );
    let retention = t.app.settings.expired_retention;
    let just_kept = expires_at + retention - Duration::milliseconds(1);
    assert_eq!(t.app.sweeper.run_once(just_kept).await.unwrap().purged, 0);
    assert_eq!(
        t.app
            .sweeper
            .run_once(expires_at + retention)
            .await
            .unwrap()
            .purged,
        1
    );
    assert!(t.app.store.alert_revisions(&id).await.unwrap().is_empty());

    // By then a retry of its POST can no longer be accepted, so purging frees nothing a retry
    // could take back.
    t.app.clock.pin(expires_at + retention);
    expect_error(
        t.post_alert(&t.groundspan_token(), &body).await,
        400,
        "EXPIRES_IN_PAST",
    )
    .await;
    expect_error(
        withdraw(&t, &t.groundspan_token(), &id).await,
        404,
        "ALERT_NOT_FOUND",
    )
    .await;
}
