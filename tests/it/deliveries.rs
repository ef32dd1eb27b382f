//! Delivery of company notifications to partners' postback URLs, against a throwaway receiver.
//! The worker is driven one pass at a time (`run_once(now)`), with `now` moved forward to make
//! retries due: no test waits for a timer.

use std::time::{Duration, Instant};

use maestro::{
    auth::{TokenKind, signing::TokenRequest},
    config::Role,
    notifications::{Pass, document::authorization_key},
    store::Subscription,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::{
    helpers::*,
    receiver::{Answer, Receiver, SilentEndpoint},
};

pub(crate) const PARTNER: &str = "acme";
pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TRIP: &str = "naIzQJ0y2DBWjCIQOb2SHTsozwBsHDkdP";

/// An app with the receiver's loopback address allowed and a short retry schedule.
pub(crate) async fn spawn(backend: Backend, receiver: &Receiver) -> TestApp {
    let t = TestApp::spawn_with(backend, allow_loopback).await;
    register(&t, receiver).await;
    t
}

pub(crate) fn allow_loopback(settings: &mut maestro::Settings) {
    settings.delivery_allowed_subnets = vec!["127.0.0.0/8".parse().unwrap()];
    settings.delivery_retry_schedule = "10s,1m".parse().unwrap();
    settings.public_url = "https://maestro.example.com".into();
}

/// The partner with the receiver as its postback URL.
pub(crate) async fn register(t: &TestApp, receiver: &Receiver) {
    t.import_partner(
        PARTNER,
        &format!(
            "postback_url = \"{}\"\npostback_secret = \"{SECRET}\"",
            receiver.url
        ),
    )
    .await;
}

/// A company administrator working in `partner`'s application.
fn admin_user(t: &TestApp, partner: &str) -> String {
    t.token(TokenRequest {
        kind: TokenKind::User,
        subject: "5e1c1b4a-93a4-4c4e-9d43-1f1d0b7e0a11".into(),
        app_id: Some(partner.into()),
        scopes: vec![],
        company: Some(COMPANY.into()),
        roles: vec!["CompanyAdministrator".into()],
        ttl_secs: 600,
    })
}

pub(crate) fn app_token(t: &TestApp, scopes: &[&str]) -> String {
    t.token(TokenRequest {
        kind: TokenKind::App,
        subject: "operator".into(),
        app_id: Some("operator".into()),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        company: None,
        roles: vec![],
        ttl_secs: 600,
    })
}

pub(crate) async fn subscribe(t: &TestApp, object_type: &str) {
    subscribe_partner(t, PARTNER, object_type).await;
}

async fn subscribe_partner(t: &TestApp, partner: &str, object_type: &str) {
    let response = t
        .client
        .post(t.url(&format!("/api/company/v1.0/subscribe?type={object_type}")))
        .header("Authorization", format!("OAuth {}", admin_user(t, partner)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

pub(crate) fn event(object_type: &str) -> Value {
    let mut body = json!({
        "type": object_type, "eventType": "CREATE", "companyId": COMPANY,
        "userLogin": "cm@example.com", "occurredAt": "2013-02-13T08:12:35Z"
    });
    if object_type == "itinerary" {
        body["tripId"] = json!(TRIP);
    }
    body
}

/// Publishes an event; returns its delivery ids.
pub(crate) async fn publish(t: &TestApp, body: &Value) -> Vec<String> {
    let response = t
        .send_json(
            reqwest::Method::POST,
            "/internal/v1/company-events",
            &app_token(t, &["maestro.events.publish"]),
            body,
        )
        .await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    let deliveries = t
        .app
        .store
        .deliveries_of(accepted["eventId"].as_str().unwrap())
        .await
        .unwrap();
    deliveries.into_iter().map(|d| d.id).collect()
}

pub(crate) async fn pass(t: &TestApp, now: OffsetDateTime) -> Pass {
    t.app.delivery.run_once(now).await.unwrap()
}

async fn admin_get(t: &TestApp, path: &str) -> (u16, Value) {
    let response = t
        .client
        .get(t.url(path))
        .bearer_auth(app_token(t, &["maestro.admin"]))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn delivery(t: &TestApp, id: &str) -> Value {
    let (status, body) = admin_get(t, &format!("/admin/v1/deliveries/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn each_type_is_delivered_with_its_exact_query_string(backend: Backend) {
    let receiver = Receiver::start().await;
    let t = spawn(backend, &receiver).await;
    for object_type in ["itinerary", "profile", "fop"] {
        subscribe(&t, object_type).await;
    }
    let key = authorization_key(PARTNER, COMPANY);
    let cases = [
        (
            "itinerary",
            format!(
                "/hooks/concur?type=itinerary&oauth_token_key={key}&userid_type=login&userid_value=cm%40example.com"
            ),
            format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Notification>\n  \
                 <ObjectType>ITINERARY</ObjectType>\n  \
                 <ObjectURI>https://maestro.example.com/api/travel/trip/v1.1/{TRIP}</ObjectURI>\n  \
                 <EventDateTime>2013-02-13T08:12:35</EventDateTime>\n  \
                 <EventType>CREATE</EventType>\n  <Context/>\n  <TripId>{TRIP}</TripId>\n\
                 </Notification>"
            ),
        ),
        (
            "profile",
            format!(
                "/hooks/concur?type=profile&oauth_token_key={key}&userid_type=login&userid_value=cm%40example.com"
            ),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Notification>\n  \
             <ObjectType>PROFILE</ObjectType>\n  \
             <ObjectURI>https://maestro.example.com/api/travelprofile/v2.0/profile?userid_type=login&amp;userid_value=cm%40example.com</ObjectURI>\n  \
             <EventDateTime>2013-02-13T08:12:35</EventDateTime>\n  \
             <EventType>CREATE</EventType>\n  <Context/>\n</Notification>"
                .to_owned(),
        ),
        (
            "fop",
            format!("/hooks/concur?type=FOP&oauth_token_key={key}"),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Notification>\n  \
             <ObjectType>FOP</ObjectType>\n  \
             <ObjectURI>https://maestro.example.com/api/travelprofile/v2.0/profile?userid_type=login&amp;userid_value=cm%40example.com</ObjectURI>\n  \
             <EventDateTime>2013-02-13T08:12:35</EventDateTime>\n  \
             <EventType>CREATE</EventType>\n  <Context/>\n</Notification>"
                .to_owned(),
        ),
    ];
    for (index, (object_type, query, body)) in cases.iter().enumerate() {
        let ids = publish(&t, &event(object_type)).await;
        assert_eq!(ids.len(), 1);
        let done = pass(&t, OffsetDateTime::now_utc()).await;
        assert_eq!(
            done,
            Pass {
                attempted: 1,
                delivered: 1
            }
        );
        let got = &receiver.received()[index];
        assert_eq!(&got.path_and_query, query, "{object_type}");
        assert_eq!(&got.body, body, "{object_type}");
        assert_eq!(got.header("content-type"), "application/xml");
        assert_eq!(got.webhook_id(), ids[0]);
        assert!(!got.body.contains("Bearer") && !got.path_and_query.contains("eyJ"));
        assert_eq!(delivery(&t, &ids[0]).await["status"], "delivered");
    }
}

async fn the_signature_verifies_with_the_standard_webhooks_library(backend: Backend) {
    let receiver = Receiver::start().await;
    let t = spawn(backend, &receiver).await;
    subscribe(&t, "itinerary").await;
    publish(&t, &event("itinerary")).await;
    pass(&t, OffsetDateTime::now_utc()).await;
    let got = &receiver.received()[0];
    let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
    verifier
        .verify(got.body.as_bytes(), &got.headers)
        .expect("the signature verifies");
    // One changed byte and it does not.
    let tampered = got.body.replace("CREATE", "CANCEL");
    assert!(verifier.verify(tampered.as_bytes(), &got.headers).is_err());
    let other = standardwebhooks::Webhook::new("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    assert!(other.verify(got.body.as_bytes(), &got.headers).is_err());
}

async fn a_failure_is_retried_on_schedule_under_the_same_webhook_id(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script([
        Answer::status(503).with_body("down for maintenance"),
        Answer::status(200),
    ]);
    let t = spawn(backend, &receiver).await;
    subscribe(&t, "itinerary").await;
    let id = publish(&t, &event("itinerary")).await.remove(0);
    let start = OffsetDateTime::now_utc();
    assert_eq!(pass(&t, start).await.delivered, 0);
    let pending = delivery(&t, &id).await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["lastStatus"], 503);
    assert_eq!(pending["attempts"][0]["outcome"], "retry");
    assert_eq!(
        pending["attempts"][0]["responseBody"],
        "down for maintenance"
    );
    // Not due yet (10 s ± 20 %): nothing is sent.
    assert_eq!(pass(&t, start + Duration::from_secs(7)).await.attempted, 0);
    assert_eq!(
        pass(&t, start + Duration::from_secs(13)).await,
        Pass {
            attempted: 1,
            delivered: 1
        }
    );
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].webhook_id(), id);
    assert_eq!(got[1].webhook_id(), id);
    let done = delivery(&t, &id).await;
    assert_eq!(done["status"], "delivered");
    assert_eq!(done["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(done["attempts"][1]["statusCode"], 200);
}

async fn an_answer_with_nul_bytes_is_recorded_with_the_others(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script([
        Answer::status(503).with_body("busy\0for now"),
        Answer::status(200),
    ]);
    let t = spawn(backend, &receiver).await;
    subscribe(&t, "itinerary").await;
    let mut ids = publish(&t, &event("itinerary")).await;
    ids.extend(publish(&t, &event("itinerary")).await);
    // Both attempts are recorded, in one batch or two, whichever answer came first.
    let start = OffsetDateTime::now_utc();
    assert_eq!(pass(&t, start).await.attempted, 2);
    let mut recorded = Vec::new();
    for id in &ids {
        recorded.push(delivery(&t, id).await);
    }
    let bodies: Vec<&Value> = recorded
        .iter()
        .map(|d| &d["attempts"][0]["responseBody"])
        .collect();
    assert!(
        bodies.contains(&&json!("busy\u{FFFD}for now")),
        "the NUL replaced, the rest kept: {bodies:?}"
    );
    let statuses: Vec<&Value> = recorded.iter().map(|d| &d["status"]).collect();
    assert!(statuses.contains(&&json!("pending")) && statuses.contains(&&json!("delivered")));
}

async fn retries_end_when_the_schedule_does(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script([
        Answer::status(500),
        Answer::status(502),
        Answer::status(504),
    ]);
    let t = spawn(backend, &receiver).await;
    subscribe(&t, "fop").await;
    let id = publish(&t, &event("fop")).await.remove(0);
    let start = OffsetDateTime::now_utc();
    pass(&t, start).await;
    pass(&t, start + Duration::from_secs(15)).await;
    pass(&t, start + Duration::from_secs(120)).await;
    let failed = delivery(&t, &id).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 3);
    assert!(
        failed["lastError"]
            .as_str()
            .unwrap()
            .contains("no retries left")
    );
    assert_eq!(
        pass(&t, start + Duration::from_secs(86_400))
            .await
            .attempted,
        0
    );
}

async fn retry_after_is_honoured(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script([Answer::status(429).with_header("retry-after", "120")]);
    let t = spawn(backend, &receiver).await;
    subscribe(&t, "itinerary").await;
    let id = publish(&t, &event("itinerary")).await.remove(0);
    // A whole second, after the event's arrival (when its delivery fell due).
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::from_secs(1);
    pass(&t, start).await;
    let pending = delivery(&t, &id).await;
    let next = OffsetDateTime::parse(
        pending["nextAttemptAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(next - start, time::Duration::seconds(120));
    // The schedule alone (10 s) would have made it due now; the partner asked for two minutes.
    assert_eq!(pass(&t, start + Duration::from_secs(60)).await.attempted, 0);
    assert_eq!(
        pass(&t, start + Duration::from_secs(121)).await.delivered,
        1
    );
}

async fn a_client_error_is_not_retried(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script([Answer::status(400).with_body("<Error>bad</Error>")]);
    let t = spawn(backend, &receiver).await;
    subscribe(&t, "profile").await;
    let id = publish(&t, &event("profile")).await.remove(0);
    let start = OffsetDateTime::now_utc();
    pass(&t, start).await;
    let failed = delivery(&t, &id).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempts"][0]["outcome"], "failed");
    assert_eq!(failed["attempts"][0]["statusCode"], 400);
    assert_eq!(
        pass(&t, start + Duration::from_secs(3600)).await.attempted,
        0
    );
    assert_eq!(receiver.received().len(), 1);
    // The subscription stays.
    assert_eq!(t.app.store.subscriptions(COMPANY).await.unwrap().len(), 1);
}

async fn gone_ends_the_subscription(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script([Answer::status(410)]);
    let t = spawn(backend, &receiver).await;
    subscribe(&t, "itinerary").await;
    subscribe(&t, "profile").await;
    let id = publish(&t, &event("itinerary")).await.remove(0);
    pass(&t, OffsetDateTime::now_utc()).await;
    assert_eq!(delivery(&t, &id).await["attempts"][0]["outcome"], "gone");
    let left = t.app.store.subscriptions(COMPANY).await.unwrap();
    assert_eq!(
        left,
        [Subscription {
            partner_id: PARTNER.into(),
            company_id: COMPANY.into(),
            object_type: "profile".into(),
        }]
    );
    // The next itinerary event owes this partner nothing.
    assert!(publish(&t, &event("itinerary")).await.is_empty());
}

async fn a_timeout_is_retried(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script([Answer::status(200).after(Duration::from_secs(5))]);
    let t = TestApp::spawn_with(backend, |s| {
        allow_loopback(s);
        s.delivery_timeout = Duration::from_millis(300);
    })
    .await;
    register(&t, &receiver).await;
    subscribe(&t, "itinerary").await;
    let id = publish(&t, &event("itinerary")).await.remove(0);
    let start = OffsetDateTime::now_utc();
    pass(&t, start).await;
    let pending = delivery(&t, &id).await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["attempts"][0]["statusCode"], Value::Null);
    assert!(
        pending["lastError"]
            .as_str()
            .unwrap()
            .starts_with("no answer within")
    );
    assert_eq!(pass(&t, start + Duration::from_secs(13)).await.delivered, 1);
}

async fn private_addresses_are_refused_unless_allowed(backend: Backend) {
    let receiver = Receiver::start().await;
    // The default policy: loopback is not allowed.
    let t = TestApp::spawn(backend).await;
    register(&t, &receiver).await;
    subscribe(&t, "itinerary").await;
    let literal = publish(&t, &event("itinerary")).await.remove(0);
    pass(&t, OffsetDateTime::now_utc()).await;
    // A name that resolves to loopback is refused by the resolver, on the address it returns.
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    t.import_partner(PARTNER, &format!("postback_url = \"{by_name}\""))
        .await;
    let named = publish(&t, &event("itinerary")).await.remove(0);
    pass(&t, OffsetDateTime::now_utc()).await;
    for id in [literal, named] {
        let refused = delivery(&t, &id).await;
        assert_eq!(refused["status"], "failed", "{refused}");
        let error = refused["lastError"].as_str().unwrap();
        assert!(error.contains("not a public address"), "{error}");
    }
    assert!(receiver.received().is_empty());
}

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
    each_type_is_delivered_with_its_exact_query_string,
    the_signature_verifies_with_the_standard_webhooks_library,
    a_failure_is_retried_on_schedule_under_the_same_webhook_id,
    an_answer_with_nul_bytes_is_recorded_with_the_others,
    retries_end_when_the_schedule_does,
    retry_after_is_honoured,
    a_client_error_is_not_retried,
    gone_ends_the_subscription,
    a_timeout_is_retried,
    private_addresses_are_refused_unless_allowed,
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
