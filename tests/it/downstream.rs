//! Downstream consumers (SPEC §4.2) against a real NATS server: every event reaches the stream
//! in order as a CloudEvent; `kill -9` of the real binary while it publishes loses and repeats
//! nothing; NATS stopped and started again loses nothing and publishing resumes by itself.
//! And the messages match the AsyncAPI document the server serves (validated in ops.rs).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use maestro::store::{InboxMark, InboxOwner, NewCompanyEvent};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    helpers::*,
    nats_helpers::*,
    real_binary::{self, issue_token, start_server_with, stop_gracefully},
};

crate::on_both_backends!(every_event_goes_downstream_in_order_as_a_cloudevent);

fn instant(text: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(text.as_str().unwrap(), &Rfc3339).unwrap()
}

/// An instant to the millisecond, as both backends keep expiries.
fn millis(text: &Value) -> i128 {
    instant(text).unix_timestamp_nanos() / 1_000_000
}

/// Runs publisher passes until the stream holds `n` messages.
async fn publish_until(t: &TestApp, stream: &TestStream, n: u64) {
    let publisher = t.app.downstream.clone().expect("NATS is configured");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stream.count().await < n {
        publisher.run_once().await.unwrap();
        assert!(
            tokio::time::Instant::now() < deadline,
            "never published {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A validator for the payload of `message` in the AsyncAPI document `doc`.
fn payload_validator(doc: &Value, message: &str) -> jsonschema::Validator {
    let mut root = doc.clone();
    root["$ref"] = json!(format!("#/components/messages/{message}/payload"));
    jsonschema::validator_for(&root).unwrap()
}

async fn every_event_goes_downstream_in_order_as_a_cloudevent(backend: Backend) {
    if !nats_available().await {
        return;
    }
    let stream = TestStream::new(&nats_url()).await;
    let t = TestApp::spawn_with(backend, |s| stream.configure(s)).await;
    let token = t.groundspan_token();
    let body = post_seed();
    let created: Value = t.post_alert(&token, &body).await.json().await.unwrap();
    let alert_id = created["alertId"].as_str().unwrap().to_owned();
    let mut update = seed("groundspan_put.json");
    update["extRef"] = body["extRef"].clone();
    let new_expiry = OffsetDateTime::now_utc() + time::Duration::days(20);
    update["expiresAt"] = json!(rfc3339(new_expiry));
    let response = t.put_alert(&token, Some(&alert_id), &update).await;
    assert_eq!(response.status(), 200);
    // A user's mark stays in the inbox.
    let reader = InboxOwner {
        company_id: COMPANY.into(),
        user_id: body["userId"].as_str().unwrap().into(),
    };
    let marked = t
        .app
        .store
        .mark_inbox(
            &reader,
            &alert_id,
            InboxMark::Read,
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    assert_eq!(marked, Some(true));
    let expires_at = instant(&update["expiresAt"]);
    t.app.clock.pin(expires_at);
    assert_eq!(t.app.sweeper.run_once(expires_at).await.unwrap().expired, 1);
    let company_event = t
        .app
        .events
        .record(NewCompanyEvent {
            id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
            object_type: "itinerary".into(),
            event_type: "UPDATE".into(),
            company_id: COMPANY.into(),
            user_login: Some("traveller@example.com".into()),
            trip_id: Some("TRIP-1".into()),
            occurred_at: OffsetDateTime::now_utc() - time::Duration::hours(1),
            object: None,
            received_at: OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();

    publish_until(&t, &stream, 4).await;
    let publisher = t.app.downstream.clone().unwrap();
    let again = publisher.run_once().await.unwrap();
    assert_eq!(again.published, 0, "nothing twice");
    let messages = stream.messages().await;
    let prefix = &stream.prefix;
    let subjects: Vec<&str> = messages.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            format!("{prefix}.alerts.groundspan.alert.created"),
            format!("{prefix}.alerts.groundspan.alert.updated"),
            format!("{prefix}.alerts.groundspan.alert.expired"),
            format!("{prefix}.company.itinerary"),
        ],
        "in order, and no alert.read"
    );

    let doc: Value = t.get_json("/asyncapi.json").await;
    let expected = [
        ("alert.created", "alertCreated", 1, &body["expiresAt"]),
        ("alert.updated", "alertUpdated", 2, &update["expiresAt"]),
        ("alert.expired", "alertExpired", 2, &update["expiresAt"]),
    ];
    let mut last_id = 0;
    for (message, (event_type, schema, revision, expiry)) in messages.iter().zip(expected) {
        let event = &message.body;
        let id: i64 = event["id"].as_str().unwrap().parse().unwrap();
        assert!(id > last_id, "outbox ids, in order");
        last_id = id;
        assert_eq!(
            message.msg_id.as_deref(),
            event["id"].as_str(),
            "Nats-Msg-Id"
        );
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["source"], t.app.settings.public_url.as_str());
        assert_eq!(event["type"], format!("com.maestro.{event_type}"));
        assert_eq!(event["subject"], alert_id.as_str());
        assert_eq!(event["datacontenttype"], "application/json");
        assert_eq!(millis(&event["expirytime"]), millis(expiry));
        let data = &event["data"];
        assert_eq!(data["alertId"], alert_id.as_str());
        assert_eq!(data["partner"], GROUNDSPAN);
        assert_eq!(data["companyId"], COMPANY);
        assert_eq!(data["userId"], body["userId"]);
        assert_eq!(data["templateId"], body["templateId"]);
        assert_eq!(data["revision"], revision);
        assert_eq!(millis(&data["expiresAt"]), millis(expiry));
        let validator = payload_validator(&doc, schema);
        assert!(validator.is_valid(event), "{event} against {schema}");
    }
    assert_eq!(
        millis(&messages[2].body["time"]),
        millis(&update["expiresAt"]),
        "an expiry happened at the expiry"
    );
    let company = &messages[3].body;
    assert_eq!(
        messages[3].msg_id.as_deref(),
        Some(company_event.event_id.as_str())
    );
    assert_eq!(company["id"], company_event.event_id.as_str());
    assert_eq!(company["type"], "com.maestro.company.itinerary");
    assert_eq!(company["subject"], "TRIP-1");
    assert_eq!(company["data"]["eventType"], "UPDATE");
    assert_eq!(
        company["data"]["objectUri"],
        format!("{}/api/travel/trip/v1.1/TRIP-1", t.app.settings.public_url)
    );
    assert!(
        payload_validator(&doc, "companyEvent").is_valid(company),
        "{company}"
    );

    // The stream was made with the SPEC's shape.
    let info = stream.stream().await.unwrap().get_info().await.unwrap();
    let config = info.config;
    assert_eq!(
        config.subjects,
        [format!("{prefix}.alerts.>"), format!("{prefix}.company.>")]
    );
    assert_eq!(
        config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    assert!(config.duplicate_window >= Duration::from_secs(120));
    assert!(config.max_age > Duration::ZERO && config.max_bytes > 0);
    assert!(
        t.metrics()
            .await
            .lines()
            .any(|l| l == "maestro_outbox_publish_lag_seconds 0"),
        "caught up"
    );
}

#[tokio::test]
async fn kill_9_while_publishing_loses_and_repeats_no_acknowledged_alert() {
    if !nats_available().await {
        return;
    }
    let stream = TestStream::new(&nats_url()).await;
    let dir = real_binary::migrated_dir();
    let token = issue_token(dir.path());
    let env = stream.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (mut server, base, _) = start_server_with(dir.path(), &env);

    // Four clients post alerts while the server publishes them; it is killed half-way.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut posters = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (acknowledged, base, token) = (acknowledged.clone(), base.clone(), token.clone());
        posters.spawn(async move {
            let client = http_client();
            for _ in 0..100 {
                let sent = client
                    .post(format!("{base}/maestro/v4/alerts"))
                    .bearer_auth(&token)
                    .header("Content-Type", "application/json")
                    .body(post_seed().to_string())
                    .send()
                    .await;
                let Ok(response) = sent else { break };
                let Ok(answer) = response.json::<Value>().await else {
                    break;
                };
                let id = answer["alertId"].as_str().expect("accepted").to_owned();
                acknowledged.lock().unwrap().push(id);
            }
        });
    }
    // The kill must come while it publishes: after its first message on the stream (on a busy
    // machine the publisher may connect only once many alerts are in) and before it has caught
    // up with the clients, which the assertion at the end checks.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 150 || stream.count().await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alerts were not accepted, or none was published"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill().unwrap(); // SIGKILL: no shutdown, no flush
    server.wait().unwrap();
    while posters.join_next().await.is_some() {}
    let published_before = stream.count().await;
    let acknowledged = acknowledged.lock().unwrap().clone();

    let (server, _, _) = start_server_with(dir.path(), &env);
    stream
        .until_count(acknowledged.len() as u64, Duration::from_secs(60))
        .await;
    stop_gracefully(server);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for message in stream.messages().await {
        assert_eq!(message.body["type"], "com.maestro.alert.created");
        *seen
            .entry(message.body["subject"].as_str().unwrap().into())
            .or_default() += 1;
    }
    for id in &acknowledged {
        assert_eq!(seen.get(id), Some(&1), "{id} on the stream once");
    }
    assert!(seen.values().all(|&n| n == 1), "no alert twice");
    assert!(
        published_before > 0 && (published_before as usize) < seen.len(),
        "the kill came while it published ({published_before} of {})",
        seen.len()
    );
}

#[tokio::test]
async fn nats_stopped_and_started_again_loses_nothing_and_publishing_resumes() {
    if !nats_available().await || !OwnNatsServer::available() {
        return;
    }
    let store_dir = tempfile::tempdir().unwrap();
    let mut nats = OwnNatsServer::start(store_dir.path(), None).await;
    let stream = TestStream::new(&nats.url()).await;
    let t = TestApp::spawn_with(Backend::Sqlite, |s| {
        stream.configure(s);
        // The loops run, the publisher's among them.
        s.role = maestro::config::Role::All;
    })
    .await;
    let token = t.groundspan_token();
    let mut alerts = Vec::new();
    for _ in 0..5 {
        let created: Value = t
            .post_alert(&token, &post_seed())
            .await
            .json()
            .await
            .unwrap();
        alerts.push(created["alertId"].as_str().unwrap().to_owned());
    }
    stream.until_count(5, Duration::from_secs(20)).await;

    nats.kill();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let response = t.post_alert(&token, &post_seed()).await;
        assert_eq!(response.status(), 200, "ingestion goes on");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "nothing waits on NATS"
        );
        let created: Value = response.json().await.unwrap();
        alerts.push(created["alertId"].as_str().unwrap().to_owned());
    }
    let ready = t.client.get(t.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "still ready");
    let lag = async {
        loop {
            let metrics = t.metrics().await;
            let lag: f64 = metrics
                .lines()
                .find_map(|l| l.strip_prefix("maestro_outbox_publish_lag_seconds "))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            if lag >= 1.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), lag)
        .await
        .expect("the lag shows");

    let _nats = OwnNatsServer::start(store_dir.path(), Some(nats.port)).await;
    stream.until_count(10, Duration::from_secs(40)).await;
    let published: Vec<String> = stream
        .messages()
        .await
        .iter()
        .map(|m| m.body["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(published, alerts, "every alert once, in order");
    let caught_up = async {
        while !t
            .metrics()
            .await
            .lines()
            .any(|l| l == "maestro_outbox_publish_lag_seconds 0")
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), caught_up)
        .await
        .expect("the lag is back to 0");
}
