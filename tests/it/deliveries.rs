//! Delivery of company notifications to partners' postback URLs, against a throwaway receiver:
//! the request a partner receives, and what each answer leads to. The worker is driven one pass
//! at a time (`run_once(now)`), with `now` moved forward to make retries due: no test waits for
//! a timer. `delivery_recovery.rs` has replays, restarts and partners that stall.

use std::time::Duration;

use maestro::{
    notifications::{Pass, document::authorization_key},
    store::Subscription,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{
    delivery_helpers::*,
    helpers::*,
    receiver::{Answer, Receiver},
};

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
);
