//! What the host product's front end can count on (SPEC §5), black-box on both backends: a
//! stream that resumes where it dropped (on another instance too, a day later too), read-all,
//! snooze and its end, `state=snoozed`, and items with their text and partner.

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{helpers::*, inbox_helpers::*};

crate::on_both_backends!(
    a_resumed_stream_replays_what_it_missed_in_order_then_goes_live,
    a_position_a_day_old_is_still_served_and_one_never_handed_out_gets_resync,
    read_all_marks_the_inbox_read_and_tells_the_other_streams,
    a_snoozed_alert_comes_back_unread_when_the_sweeper_ends_the_snooze,
    a_snooze_must_end_ahead_and_before_the_expiry,
    items_carry_their_text_and_partner,
);

/// A Groundspan alert for the seed user, under its own extRef.
async fn post_as(t: &TestApp, ext_ref: &str) -> String {
    let mut body = post_seed();
    body["extRef"] = json!(ext_ref);
    t.create_alert(&body).await
}

async fn update(t: &TestApp, ext_ref: &str, amount: f64) {
    let mut body = post_seed();
    body["extRef"] = json!(ext_ref);
    body["metadata"]["packages"][0]["variants"][0]["price"]["amount"] = json!(amount);
    let response = t.put_alert(&t.groundspan_token(), None, &body).await;
    assert_eq!(response.status(), 200);
}

fn position(stream: &EventStream) -> i64 {
    stream.last_id.as_deref().unwrap().parse().unwrap()
}

/// The next event, checked to be `name` about `alert_id`; its position never goes back.
async fn expect(stream: &mut EventStream, name: &str, alert_id: &str, after: &mut i64) -> Value {
    let (got, data) = stream.next().await;
    assert_eq!(
        (got.as_str(), data["alertId"].as_str()),
        (name, Some(alert_id)),
        "{data}"
    );
    let now = position(stream);
    assert!(
        now >= *after,
        "positions never go back: {now} after {after}"
    );
    *after = now;
    data
}

async fn snooze(t: &TestApp, token: &str, alert_id: &str, until: &str) -> reqwest::Response {
    t.client
        .post(t.url(&format!("/maestro/v4/inbox/{alert_id}/snooze")))
        .bearer_auth(token)
        .json(&json!({ "until": until }))
        .send()
        .await
        .unwrap()
}

async fn a_resumed_stream_replays_what_it_missed_in_order_then_goes_live(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = TestApp::spawn_on(a.db.clone(), |_| {}).await;
    let user = a.seed_user_token();
    let first = post_as(&a, "first").await;
    let mut stream = a.stream(&user).await;
    let mut at = position(&stream);
    update(&a, "first", 425.0).await;
    expect(&mut stream, "alert.updated", &first, &mut at).await;
    // The connection drops; the inbox goes on changing, on both instances.
    let dropped_at = stream.last_id.clone().unwrap();
    drop(stream);
    assert_eq!(a.mark(&user, &first, "read").await.status(), 200);
    let second = post_as(&b, "second").await;
    assert_eq!(a.mark(&user, &second, "dismiss").await.status(), 200);

    // The browser comes back, to the other instance, with the id it last had.
    let (mut stream, name, data) = b.stream_from(&user, Some(&dropped_at)).await;
    assert_eq!(name, "ready");
    assert_eq!(data["resumed"], true);
    assert_eq!(data["unreadCount"], 0);
    let mut at = dropped_at.parse().unwrap();
    let read = expect(&mut stream, "alert.read", &first, &mut at).await;
    assert_eq!(read["item"]["read"], true);
    let created = expect(&mut stream, "alert.created", &second, &mut at).await;
    assert_eq!(
        created["item"],
        Value::Null,
        "events carry the alert as it is now: dismissed"
    );
    expect(&mut stream, "alert.dismissed", &second, &mut at).await;
    // Then live.
    update(&b, "first", 400.0).await;
    let live = expect(&mut stream, "alert.updated", &first, &mut at).await;
    assert_eq!(live["item"]["read"], false);
    assert_eq!(live["unreadCount"], 1);

    // Resuming from the last id told repeats nothing but what may lie above it.
    let last = stream.last_id.clone().unwrap();
    drop(stream);
    let (mut stream, name, _) = a.stream_from(&user, Some(&last)).await;
    assert_eq!(name, "ready");
    update(&a, "first", 380.0).await;
    let (name, data) = stream.next().await;
    if name == "alert.updated" && data["item"]["html"].as_str().unwrap().contains("400.00") {
        // A repeat of the event it had: harmless, the alert as it is now follows.
        let (name, data) = stream.next().await;
        assert_eq!(name, "alert.updated");
        assert!(
            data["item"]["html"].as_str().unwrap().contains("380.00"),
            "{data}"
        );
    } else {
        assert_eq!(name, "alert.updated");
    }
}

async fn a_position_a_day_old_is_still_served_and_one_never_handed_out_gets_resync(
    backend: Backend,
) {
    let t = TestApp::spawn(backend).await;
    let user = t.seed_user_token();
    let stream = t.stream(&user).await;
    let old = stream.last_id.clone().unwrap();
    drop(stream);
    let id = post_as(&t, "day-old").await;
    // A day and more later, after the sweeper's passes: the outbox still has the event.
    let later = OffsetDateTime::now_utc() + Duration::hours(25);
    t.app.clock.pin(later);
    t.app.sweeper.run_once(later).await.unwrap();
    let (mut stream, name, _) = t.stream_from(&user, Some(&old)).await;
    assert_eq!(name, "ready");
    let (name, data) = stream.next().await;
    assert_eq!(
        (name.as_str(), data["alertId"].as_str()),
        ("alert.created", Some(id.as_str()))
    );

    for never in ["999999999", "-1", "abc"] {
        let (mut stream, name, data) = t.stream_from(&user, Some(never)).await;
        assert_eq!(name, "resync", "{never}: {data}");
        assert_eq!(data["unreadCount"], 1);
        // It goes on live from there.
        assert_eq!(t.mark(&user, &id, "read").await.status(), 200);
        let (name, _) = stream.next().await;
        assert_eq!(name, "alert.read");
        update(&t, "day-old", 300.0 + never.len() as f64).await;
        let (name, _) = stream.next().await;
        assert_eq!(name, "alert.updated");
    }
}

async fn read_all_marks_the_inbox_read_and_tells_the_other_streams(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let user = t.seed_user_token();
    let one = post_as(&t, "one").await;
    let two = post_as(&t, "two").await;
    let mut other_tab = t.stream(&user).await;
    let response = t
        .client
        .post(t.url("/maestro/v4/inbox/read-all"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"changed": 2, "unreadCount": 0})
    );
    let mut at = 0;
    let first = expect(&mut other_tab, "alert.read", &one, &mut at).await;
    let second = expect(&mut other_tab, "alert.read", &two, &mut at).await;
    assert_eq!(
        (first["item"]["read"].clone(), second["unreadCount"].clone()),
        (json!(true), json!(0))
    );
    let again = t
        .client
        .post(t.url("/maestro/v4/inbox/read-all"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        json!({"changed": 0, "unreadCount": 0})
    );
    let inbox = t.inbox_json(&user, "?state=unread").await;
    assert_eq!(inbox["items"], json!([]));
}

async fn a_snoozed_alert_comes_back_unread_when_the_sweeper_ends_the_snooze(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let user = t.seed_user_token();
    let id = post_as(&t, "snoozy").await;
    assert_eq!(t.mark(&user, &id, "read").await.status(), 200);
    let mut stream = t.stream(&user).await;
    let until = (OffsetDateTime::now_utc() + Duration::hours(3))
        .replace_millisecond(0)
        .unwrap();
    let until_text = until.format(&Rfc3339).unwrap();

    let response = snooze(&t, &user, &id, &until_text).await;
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(
        receipt,
        json!({"alertId": id, "changed": true, "snoozedUntil": until_text, "unreadCount": 0})
    );
    let mut at = 0;
    let snoozed = expect(&mut stream, "alert.snoozed", &id, &mut at).await;
    assert_eq!(snoozed["item"]["snoozedUntil"], until_text.as_str());
    assert_eq!(t.inbox_json(&user, "").await["items"], json!([]));
    let listed = t.inbox_json(&user, "?state=snoozed").await;
    assert_eq!(listed["items"][0]["alertId"], id.as_str());
    assert_eq!(
        listed["items"][0]["read"], false,
        "it will come back unread"
    );
    assert_eq!(listed["unreadCount"], 0, "a snoozed alert is not counted");
    let repeat: Value = snooze(&t, &user, &id, &until_text)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(repeat["changed"], false);

    // At its end the inbox shows it again, from that instant; the sweeper's pass tells the
    // stream (within MAESTRO_SWEEP_INTERVAL in a running server).
    t.app.clock.pin(until);
    let inbox = t.inbox_json(&user, "").await;
    assert_eq!(inbox["items"][0]["alertId"], id.as_str());
    assert_eq!(inbox["items"][0]["snoozedUntil"], Value::Null);
    assert_eq!(inbox["unreadCount"], 1);
    let swept = t.app.sweeper.run_once(until).await.unwrap();
    assert_eq!(swept.woken, 1);
    let back = expect(&mut stream, "alert.unsnoozed", &id, &mut at).await;
    assert_eq!(back["item"]["read"], false);
    assert_eq!(back["unreadCount"], 1);
    assert_eq!(
        t.app.sweeper.run_once(until).await.unwrap().woken,
        0,
        "once"
    );
}

async fn a_snooze_must_end_ahead_and_before_the_expiry(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let user = t.seed_user_token();
    let id = post_as(&t, "bounded").await;
    let inbox = t.inbox_json(&user, "").await;
    let expires_at = inbox["items"][0]["expiresAt"].as_str().unwrap().to_owned();
    let past = (OffsetDateTime::now_utc() - Duration::minutes(1))
        .format(&Rfc3339)
        .unwrap();
    for until in [expires_at.as_str(), past.as_str(), "tomorrow"] {
        let body = expect_error(snooze(&t, &user, &id, until).await, 400, "INVALID_FIELD").await;
        assert_eq!(body["errors"][0]["details"]["field"], "/until", "{body}");
    }
    let body = expect_error(
        snooze(&t, &user, &id, &expires_at).await,
        400,
        "INVALID_FIELD",
    )
    .await;
    assert_eq!(
        body["errors"][0]["details"]["expiresAt"],
        expires_at.as_str()
    );
    let soon = (OffsetDateTime::now_utc() + Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    expect_error(
        snooze(&t, &user, "alt_00000000000000000000000000000000", &soon).await,
        404,
        "ALERT_NOT_FOUND",
    )
    .await;
    let other = t.user_token_with("someone-else", COMPANY, &[INBOX]);
    expect_error(snooze(&t, &other, &id, &soon).await, 404, "ALERT_NOT_FOUND").await;
    assert_eq!(
        t.inbox_json(&user, "").await["items"][0]["alertId"],
        id.as_str()
    );
}

async fn items_carry_their_text_and_partner(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let user = t.seed_user_token();
    let id = post_as(&t, "texty").await;
    let item = &t.inbox_json(&user, "").await["items"][0];
    assert_eq!(item["alertId"], id.as_str());
    assert_eq!(
        item["partner"],
        json!({"id": GROUNDSPAN, "name": "Groundspan"})
    );
    assert_eq!(item["revision"], 1);
    assert_eq!(item["snoozedUntil"], Value::Null);
    let text = item["text"].as_str().unwrap();
    assert!(text.contains("SFO → CDG") && !text.contains('<'), "{text}");
    let revisions = t.app.store.alert_revisions(&id).await.unwrap();
    assert_eq!(text, revisions[0].rendering.text);
}
