//! Deliveries that outlive a moment: replayed by the admin, pending across a restart, drained
//! on shutdown, a stalled partner beside the others, two instances sharing the work, and the
//! snapshot a notification's ObjectURI points to. Driven as in `deliveries.rs`.

use std::time::{Duration, Instant};

use maestro::{
    auth::{TokenKind, signing::TokenRequest},
    config::Role,
    notifications::Pass,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::{
    delivery_helpers::*,
    helpers::*,
    receiver::{Answer, Receiver, SilentEndpoint},
};

async fn a_failed_delivery_is_replayed_by_the_admin(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script([Answer::status(404)]);
    let t = spawn(backend, &receiver).await;
    subscribe(&t, "itinerary").await;
    let id = publish(&t, &event("itinerary")).await.remove(0);
    pass(&t, OffsetDateTime::now_utc()).await;
    assert_eq!(delivery(&t, &id).await["status"], "failed");

    let replay = |token: String| {
        t.client
            .post(t.url(&format!("/admin/v1/deliveries/{id}/replay")))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        replay(app_token(&t, &["maestro.events.publish"]))
            .await
            .unwrap()
            .status(),
        403
    );
    let replayed = replay(app_token(&t, &["maestro.admin"])).await.unwrap();
    assert_eq!(replayed.status(), 202);
    let replayed: Value = replayed.json().await.unwrap();
    assert_eq!(replayed["status"], "pending");
    // A second replay while pending is a conflict.
    let again = replay(app_token(&t, &["maestro.admin"])).await.unwrap();
    expect_error(again, 409, "DELIVERY_PENDING").await;

    assert_eq!(pass(&t, OffsetDateTime::now_utc()).await.delivered, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].webhook_id(), id);
    let done = delivery(&t, &id).await;
    assert_eq!(done["status"], "delivered");
    assert_eq!(done["attempts"].as_array().unwrap().len(), 2);

    let (status, listed) = admin_get(&t, "/admin/v1/deliveries?status=delivered").await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"][0]["id"], id.as_str());
    let (status, _) = admin_get(&t, "/admin/v1/deliveries/msg_unknown").await;
    assert_eq!(status, 404);
    let (status, _) = admin_get(&t, "/admin/v1/deliveries?status=lost").await;
    assert_eq!(status, 400);
    let anonymous = t
        .client
        .get(t.url("/admin/v1/deliveries"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

async fn pending_deliveries_survive_a_restart(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script([Answer::status(503)]);
    let first = spawn(backend, &receiver).await;
    subscribe(&first, "itinerary").await;
    let retried = publish(&first, &event("itinerary")).await.remove(0);
    pass(&first, OffsetDateTime::now_utc()).await;
    let never_tried = publish(&first, &event("itinerary")).await.remove(0);
    let now = OffsetDateTime::now_utc();
    // A worker claims it and dies mid-request: its claim holds for a lease, then lapses.
    let claimed = first
        .app
        .store
        .claim_deliveries(
            "worker-that-died",
            maestro::store::ClaimRequest {
                now,
                lease_until: now + Duration::from_secs(60),
                limit: 10,
                per_partner_limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(pass(&first, now).await.attempted, 0);
    let db = first.db.clone();
    drop(first);

    let second = TestApp::spawn_on(db, allow_loopback).await;
    let later = now + Duration::from_secs(61);
    assert_eq!(
        pass(&second, later).await,
        Pass {
            attempted: 2,
            delivered: 2
        }
    );
    let ids: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.webhook_id().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], retried);
    assert!(ids[1..].contains(&retried) && ids[1..].contains(&never_tried));
}

async fn the_running_worker_delivers_on_its_own_and_drains_on_shutdown(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script([Answer::status(200).after(Duration::from_millis(300))]);
    let mut t = TestApp::spawn_with(backend, |s| {
        allow_loopback(s);
        s.role = Role::All;
    })
    .await;
    register(&t, &receiver).await;
    subscribe(&t, "itinerary").await;
    let id = publish(&t, &event("itinerary")).await.remove(0);
    // The intake wakes the worker; the receiver sees the delivery start.
    receiver.wait_for(1).await;
    // Shut down while the partner is still answering: the attempt finishes and is recorded.
    let _ = t.shutdown_signal().send(());
    t.server_task().await.unwrap().unwrap();
    let (summary, attempts) = t.app.store.delivery(&id).await.unwrap().unwrap();
    assert_eq!(summary.status, "delivered");
    assert_eq!(attempts.len(), 1);
}

/// A partner whose endpoint never answers holds back only its own deliveries: the running
/// worker claims again as attempts finish, and one partner holds only so many of its slots.
async fn a_stuck_partner_does_not_hold_back_the_others(backend: Backend) {
    const STUCK: &str = "stuck";
    let receiver = Receiver::start().await;
    let stuck = SilentEndpoint::start().await;
    // A share smaller than the stuck partner's backlog, so the share is what holds it back.
    let t = TestApp::spawn_with(backend, |s| {
        allow_loopback(s);
        s.delivery_concurrency = 16;
        s.delivery_partner_concurrency = 8;
    })
    .await;
    register(&t, &receiver).await;
    assert!(
        t.app.settings.delivery_timeout >= Duration::from_secs(10),
        "the stuck partner's requests outlast the test"
    );
    t.import_partner(
        STUCK,
        &format!(
            "postback_url = \"{}\"\npostback_secret = \"{SECRET}\"",
            stuck.url
        ),
    )
    .await;
    subscribe_partner(&t, STUCK, "profile").await;
    subscribe(&t, "itinerary").await;
    // The stuck partner's deliveries are the oldest: the first claimed.
    let mut held_back = Vec::new();
    for _ in 0..20 {
        held_back.extend(publish(&t, &event("profile")).await);
    }
    for _ in 0..60 {
        publish(&t, &event("itinerary")).await;
    }
    let (stop, stopped) = watch::channel(false);
    let started = Instant::now();
    let worker = tokio::spawn(t.app.delivery.clone().run(stopped));
    tokio::time::timeout(Duration::from_secs(10), receiver.wait_for(60))
        .await
        .expect("the healthy partner's deliveries arrive beside the stuck one");
    eprintln!(
        "{backend:?}: 60 deliveries beside a stuck partner took {:?}",
        started.elapsed()
    );
    assert!(
        stuck.connections() <= 8,
        "the stuck partner held {} of the worker's slots, more than its share",
        stuck.connections()
    );
    // Stopping drains the attempts in flight, which end once the stuck partner hangs up.
    stop.send(true).unwrap();
    stuck.hang_up();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker drains and stops")
        .unwrap();
    for id in &held_back {
        let (summary, _) = t.app.store.delivery(id).await.unwrap().unwrap();
        assert_eq!(summary.status, "pending", "{id} is retried later");
    }
}

async fn the_object_uri_resolves_to_the_stored_snapshot(backend: Backend) {
    let receiver = Receiver::start().await;
    let t = spawn(backend, &receiver).await;
    let mut trip = event("itinerary");
    trip["object"] = json!({"TripName": "Paris & back", "Segments": {"Air": [{"Flight": "AF1"}]}});
    publish(&t, &trip).await;
    let mut profile = event("profile");
    profile["object"] = json!({"FirstName": "Chris", "EmailAddress": "cm@example.com"});
    publish(&t, &profile).await;

    let company_user = t.token(TokenRequest {
        kind: TokenKind::User,
        subject: "u-1".into(),
        app_id: Some(PARTNER.into()),
        scopes: vec![],
        company: Some(COMPANY.into()),
        roles: vec![],
        ttl_secs: 600,
    });
    let get = |path: String, token: Option<String>| {
        let request = t.client.get(t.url(&path));
        let request = match token {
            Some(token) => request.header("Authorization", format!("OAuth {token}")),
            None => request,
        };
        request.send()
    };
    let found = get(
        format!("/api/travel/trip/v1.1/{TRIP}"),
        Some(company_user.clone()),
    )
    .await
    .unwrap();
    assert_eq!(found.status(), 200);
    assert_eq!(found.headers()["content-type"], "application/xml");
    assert_eq!(
        found.text().await.unwrap(),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <Itinerary xmlns=\"http://www.concursolutions.com/api/travel/trip/2010/06\">\n  \
         <Segments>\n    <Air>\n      <Flight>AF1</Flight>\n    </Air>\n  </Segments>\n  \
         <TripName>Paris &amp; back</TripName>\n</Itinerary>"
    );
    let profile = get(
        "/api/travelprofile/v2.0/profile?userid_type=login&userid_value=cm%40example.com".into(),
        Some(company_user.clone()),
    )
    .await
    .unwrap();
    assert_eq!(profile.status(), 200);
    let text = profile.text().await.unwrap();
    assert!(text.contains(
        "<ProfileResponse xmlns=\"http://www.concursolutions.com/api/travel/trip/2010/06\">"
    ));
    assert!(text.contains("<FirstName>Chris</FirstName>"));

    let unknown = get(
        "/api/travel/trip/v1.1/nope".into(),
        Some(company_user.clone()),
    )
    .await
    .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.headers()["content-type"], "application/xml");
    assert!(unknown.text().await.unwrap().starts_with("<?xml"));
    let other_company = t.company_token(OTHER_COMPANY, PARTNER, &[]);
    let hidden = get(format!("/api/travel/trip/v1.1/{TRIP}"), Some(other_company))
        .await
        .unwrap();
    assert_eq!(hidden.status(), 404);
    let anonymous = get(format!("/api/travel/trip/v1.1/{TRIP}"), None)
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

async fn a_snapshot_with_keys_that_are_not_xml_names_is_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut trip = event("itinerary");
    trip["object"] = json!({"ok": {"bad key": 1}});
    let response = t
        .send_json(
            reqwest::Method::POST,
            "/internal/v1/company-events",
            &app_token(&t, &["maestro.events.publish"]),
            &trip,
        )
        .await;
    assert_eq!(
        error_list(response).await,
        [(
            "INVALID_FIELD".to_owned(),
            Some("/object/ok/bad key".to_owned())
        )]
    );
}

crate::on_both_backends!(
    a_failed_delivery_is_replayed_by_the_admin,
    pending_deliveries_survive_a_restart,
    the_running_worker_delivers_on_its_own_and_drains_on_shutdown,
    a_stuck_partner_does_not_hold_back_the_others,
    the_object_uri_resolves_to_the_stored_snapshot,
    a_snapshot_with_keys_that_are_not_xml_names_is_refused,
);

/// Two instances share one PostgreSQL database: their workers split the work and never send one
/// delivery twice, let alone at the same time.
#[tokio::test]
async fn two_workers_never_deliver_one_attempt_twice_at_the_same_time() {
    if !backend_available(Backend::Postgres).await {
        return;
    }
    let receiver = Receiver::start().await;
    receiver.script((0..40).map(|_| Answer::status(200).after(Duration::from_millis(20))));
    // A partner's share of slots room enough for both workers, and fewer slots per worker than
    // deliveries: this is about two claimants, not about the share.
    let roomy = |s: &mut maestro::Settings| {
        allow_loopback(s);
        s.delivery_concurrency = 16;
        s.delivery_partner_concurrency = 32;
    };
    let a = TestApp::spawn_with(Backend::Postgres, roomy).await;
    register(&a, &receiver).await;
    let b = TestApp::spawn_on(a.db.clone(), roomy).await;
    subscribe(&a, "itinerary").await;
    let mut owed = Vec::new();
    for _ in 0..40 {
        owed.extend(publish(&a, &event("itinerary")).await);
    }
    let now = OffsetDateTime::now_utc();
    let (mut by_a, mut by_b) = (0, 0);
    loop {
        let (pa, pb) = tokio::join!(pass(&a, now), pass(&b, now));
        by_a += pa.attempted;
        by_b += pb.attempted;
        if pa.attempted + pb.attempted == 0 {
            break;
        }
    }
    let mut delivered: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.webhook_id().to_owned())
        .collect();
    delivered.sort();
    owed.sort();
    assert_eq!(delivered, owed, "each delivery exactly once");
    assert!(receiver.overlaps().is_empty());
    assert!(
        by_a > 0 && by_b > 0,
        "both workers took work ({by_a}, {by_b})"
    );
}
