//! The user inbox, black-box: the inbox API and who may use it, expiry at the boundary and the
//! sweeper, the live stream (`inbox_rendering.rs`: the card, goldens and hostile input).

use maestro::store::EVENT_ALERT_EXPIRED;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{helpers::*, inbox_helpers::*};

crate::on_both_backends!(
    the_inbox_pages_newest_first_and_reports_every_bad_parameter,
    read_and_dismiss_are_idempotent_and_an_update_makes_an_alert_unread_again,
    only_the_users_own_live_alerts_are_reachable,
    an_alert_leaves_the_inbox_the_instant_it_expires_and_the_sweeper_announces_it,
    the_stream_tells_of_an_update_made_on_another_instance,
);

async fn the_inbox_pages_newest_first_and_reports_every_bad_parameter(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let user = t.seed_user_token();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(t.create_alert(&post_seed()).await);
    }
    let first = t.inbox_json(&user, "?limit=2").await;
    let listed: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["alertId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()], "newest first");
    assert_eq!(first["unreadCount"], 3);
    let cursor = first["nextCursor"].as_str().unwrap();
    let second = t
        .inbox_json(&user, &format!("?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["alertId"], ids[0].as_str());
    assert_eq!(second["nextCursor"], Value::Null);
    assert_eq!(
        t.inbox_json(&user, "?limit=3").await["nextCursor"],
        Value::Null,
        "an exact fit has no next page"
    );

    let response = t.inbox(&user, "?limit=0&state=new&cursor=!!").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let mut named: Vec<(&str, &str)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["errorCode"].as_str().unwrap(),
                e["details"]["parameter"].as_str().unwrap(),
            )
        })
        .collect();
    named.sort();
    assert_eq!(
        named,
        [
            ("INVALID_FIELD", "cursor"),
            ("INVALID_FIELD", "limit"),
            ("INVALID_FIELD", "state")
        ]
    );
    expect_error(t.inbox(&user, "?limit=101").await, 400, "INVALID_FIELD").await;
}

async fn read_and_dismiss_are_idempotent_and_an_update_makes_an_alert_unread_again(
    backend: Backend,
) {
    let t = TestApp::spawn(backend).await;
    let user = t.seed_user_token();
    let body = post_seed();
    let first = t.create_alert(&body).await;
    let second = t.create_alert(&post_seed()).await;

    let response = t.mark(&user, &first, "read").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"alertId": first, "changed": true, "unreadCount": 1})
    );
    let again: Value = t.mark(&user, &first, "read").await.json().await.unwrap();
    assert_eq!(again["changed"], false);
    let unread = t.inbox_json(&user, "?state=unread").await;
    assert_eq!(unread["items"].as_array().unwrap().len(), 1);
    assert_eq!(unread["items"][0]["alertId"], second.as_str());

    let mut changed = body.clone();
    changed["metadata"]["packages"][0]["variants"][0]["price"]["amount"] = json!(399.0);
    assert_eq!(
        t.put_alert(&t.groundspan_token(), Some(&first), &changed)
            .await
            .status(),
        200
    );
    let inbox = t.inbox_json(&user, "").await;
    let item = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["alertId"] == first.as_str())
        .unwrap();
    assert_eq!(item["read"], false);
    assert!(
        item["html"].as_str().unwrap().contains("399.00 USD"),
        "the new content"
    );
    assert_eq!(inbox["unreadCount"], 2);

    let dismissed: Value = t
        .mark(&user, &second, "dismiss")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        dismissed,
        json!({"alertId": second, "changed": true, "unreadCount": 1})
    );
    let again: Value = t
        .mark(&user, &second, "dismiss")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["changed"], false);
    let inbox = t.inbox_json(&user, "").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);
    assert_eq!(inbox["items"][0]["alertId"], first.as_str());
}

async fn only_the_users_own_live_alerts_are_reachable(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let id = t.create_alert(&post_seed()).await;

    // Another user of the company, and the same user id in another company.
    for stranger in [
        t.user_token_with("someone-else", COMPANY, &[INBOX]),
        t.user_token_with(SEED_USER, OTHER_COMPANY, &[INBOX]),
    ] {
        assert_eq!(t.inbox_json(&stranger, "").await["items"], json!([]));
        for action in ["read", "dismiss"] {
            expect_error(t.mark(&stranger, &id, action).await, 404, "ALERT_NOT_FOUND").await;
        }
    }
    let user = t.seed_user_token();
    expect_error(
        t.mark(&user, "alt_nosuch", "read").await,
        404,
        "ALERT_NOT_FOUND",
    )
    .await;
    // User ids compare without regard to case, as the token and the partner may differ.
    let shouting = t.user_token_with(&SEED_USER.to_uppercase(), COMPANY, &[INBOX]);
    assert_eq!(
        t.inbox_json(&shouting, "").await["items"][0]["alertId"],
        id.as_str()
    );

    // Who may ask at all.
    expect_error(t.inbox("", "").await, 401, "INVALID_TOKEN").await;
    let anonymous = t
        .client
        .get(t.url("/maestro/v4/inbox"))
        .send()
        .await
        .unwrap();
    expect_error(anonymous, 401, "INVALID_TOKEN").await;
    expect_error(t.inbox("not-a-jwt", "").await, 401, "INVALID_TOKEN").await;
    let company = t.company_token(COMPANY, GROUNDSPAN, &[INBOX]);
    expect_error(t.inbox(&company, "").await, 403, "USER_TOKEN_REQUIRED").await;
    let unscoped = t.user_token_with(SEED_USER, COMPANY, &[WRITE]);
    let response = t.inbox(&unscoped, "").await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="maestro", error="insufficient_scope""#
    );
    expect_error(response, 403, "INSUFFICIENT_SCOPE").await;
    expect_error(
        t.mark(&company, &id, "read").await,
        403,
        "USER_TOKEN_REQUIRED",
    )
    .await;
    let stream = t
        .client
        .get(t.url("/maestro/v4/inbox/stream"))
        .bearer_auth(&unscoped)
        .send()
        .await
        .unwrap();
    expect_error(stream, 403, "INSUFFICIENT_SCOPE").await;
}

async fn an_alert_leaves_the_inbox_the_instant_it_expires_and_the_sweeper_announces_it(
    backend: Backend,
) {
    let t = TestApp::spawn(backend).await;
    let user = t.seed_user_token();
    let expires_at = (OffsetDateTime::now_utc() + Duration::hours(1))
        .replace_millisecond(250)
        .unwrap();
    let mut body = post_seed();
    body["expiresAt"] = json!(expires_at.format(&Rfc3339).unwrap());
    let id = t.create_alert(&body).await;

    t.app.clock.pin(expires_at - Duration::milliseconds(1));
    let inbox = t.inbox_json(&user, "").await;
    assert_eq!(inbox["items"][0]["alertId"], id.as_str());
    assert_eq!(inbox["unreadCount"], 1);

    t.app.clock.pin(expires_at);
    let inbox = t.inbox_json(&user, "").await;
    assert_eq!(
        inbox["items"],
        json!([]),
        "gone at the instant, before any sweep"
    );
    assert_eq!(inbox["unreadCount"], 0);
    expect_error(t.mark(&user, &id, "read").await, 404, "ALERT_NOT_FOUND").await;
    assert!(
        t.app
            .store
            .outbox_after(0, 10)
            .await
            .unwrap()
            .iter()
            .all(|e| e.event_type != EVENT_ALERT_EXPIRED),
        "no sweep has run"
    );

    let swept = t.app.sweeper.run_once(expires_at).await.unwrap();
    assert_eq!((swept.expired, swept.purged), (1, 0));
    let expired: Vec<_> = t
        .app
        .store
        .outbox_after(0, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == EVENT_ALERT_EXPIRED)
        .collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].alert_id.as_str(), expired[0].occurred_at),
        (id.as_str(), expires_at)
    );
    assert_eq!(
        t.app.sweeper.run_once(expires_at).await.unwrap().expired,
        0,
        "idempotent"
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
}

async fn the_stream_tells_of_an_update_made_on_another_instance(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = TestApp::spawn_on(a.db.clone(), |_| {}).await;
    let user = a.seed_user_token();
    let body = post_seed();
    let id = b.create_alert(&body).await;
    // The reader takes what is in the outbox now as history (nobody listens yet).
    a.app.inbox_feed.run_once().await.unwrap();
    let mut stream = a.stream(&user).await;

    // A change on this instance is told at once (no poll interval to wait for).
    let other = a.create_alert(&post_seed()).await;
    let (name, data) = stream.next().await;
    assert_eq!(name, "alert.created");
    assert_eq!(data["alertId"], other.as_str());
    assert_eq!(data["unreadCount"], 2);

    // A change on the other instance is found by this one's outbox reader; the test runs a
    // pass itself rather than wait for the poll.
    let mut changed = body.clone();
    changed["metadata"]["packages"][0]["variants"][0]["price"]["amount"] = json!(123.0);
    assert_eq!(
        b.put_alert(&b.groundspan_token(), Some(&id), &changed)
            .await
            .status(),
        200
    );
    a.app.inbox_feed.run_once().await.unwrap();
    let (name, data) = stream.next().await;
    assert_eq!(name, "alert.updated");
    assert_eq!(data["type"], "alert.updated");
    assert_eq!(data["alertId"], id.as_str());
    assert_eq!(data["item"]["read"], false);
    assert!(
        data["item"]["html"]
            .as_str()
            .unwrap()
            .contains("123.00 USD")
    );

    // Marks reach the stream too, and so does another user's nothing.
    let stranger = b.user_token_with("someone-else", COMPANY, &[INBOX]);
    assert_eq!(b.inbox_json(&stranger, "").await["items"], json!([]));
    assert_eq!(b.mark(&user, &id, "read").await.status(), 200);
    a.app.inbox_feed.run_once().await.unwrap();
    let (name, data) = stream.next().await;
    assert_eq!(name, "alert.read");
    assert_eq!(data["item"]["read"], true);
    assert_eq!(data["unreadCount"], 1);
    assert_eq!(b.mark(&user, &id, "dismiss").await.status(), 200);
    a.app.inbox_feed.run_once().await.unwrap();
    let (name, data) = stream.next().await;
    assert_eq!(name, "alert.dismissed");
    assert_eq!(data["item"], Value::Null);
}

#[tokio::test]
async fn a_shutdown_ends_the_live_streams_instead_of_waiting_for_them() {
    let mut t = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.shutdown_grace = std::time::Duration::from_secs(60);
    })
    .await;
    let mut stream = t.stream(&t.seed_user_token()).await;
    let started = std::time::Instant::now();
    t.shutdown_signal().send(()).unwrap();
    assert!(stream.ended().await, "the stream is closed by the server");
    t.server_task().await.unwrap().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the server did not wait out its grace period for the stream"
    );
}
