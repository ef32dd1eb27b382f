//! Company events recorded at once (on PostgreSQL one transaction for many, `batch.rs`): each
//! gets the deliveries of its own subscribers, and its own place in the company feed.

use std::collections::BTreeSet;

use maestro::store::{DynStore, NewCompanyEvent, Subscription};
use time::macros::datetime;

use super::{downstream::settled, import, open};
use crate::helpers::Backend;

crate::on_both_backends!(
    events_recorded_at_once_each_owe_their_own_subscribers,
    a_failing_event_fails_alone_among_events_recorded_at_once,
);

fn event(id: &str, company_id: &str, object_type: &str) -> NewCompanyEvent {
    let at = datetime!(2026-11-24 10:00:00 UTC);
    NewCompanyEvent {
        id: id.into(),
        object_type: object_type.into(),
        event_type: "UPDATE".into(),
        company_id: company_id.into(),
        user_login: Some("cm@example.com".into()),
        trip_id: (object_type == "itinerary").then(|| format!("trip-{id}")),
        occurred_at: at,
        object: Some(format!("{{\"id\":\"{id}\"}}")),
        received_at: at,
    }
}

async fn subscribed(store: &DynStore, subscriptions: &[(&str, &str, &str)]) {
    for (partner, _, _) in subscriptions {
        store
            .import_partner(&import(partner, "{}", None))
            .await
            .unwrap();
    }
    for (partner, company, object_type) in subscriptions {
        store
            .subscribe(&Subscription {
                partner_id: (*partner).into(),
                company_id: (*company).into(),
                object_type: (*object_type).into(),
            })
            .await
            .unwrap();
    }
}

/// Records every event at once, each from a task of its own, as concurrent requests do.
async fn recorded_at_once(
    store: &DynStore,
    events: Vec<NewCompanyEvent>,
) -> Vec<(
    NewCompanyEvent,
    maestro::store::StoreResult<Vec<maestro::store::DeliveryRecord>>,
)> {
    let tasks: Vec<_> = events
        .into_iter()
        .map(|event| {
            let store = store.clone();
            tokio::spawn(async move {
                let recorded = store.record_company_event(&event).await;
                (event, recorded)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

async fn events_recorded_at_once_each_owe_their_own_subscribers(backend: Backend) {
    let (store, _db) = open(backend).await;
    subscribed(
        &store,
        &[
            ("p1", "c1", "itinerary"),
            ("p2", "c1", "itinerary"),
            ("p2", "c1", "profile"),
            ("p3", "c2", "itinerary"),
        ],
    )
    .await;
    let companies = ["c1", "c2", "c3"];
    let kinds = ["itinerary", "profile", "fop"];
    let events: Vec<_> = (0..60)
        .map(|n| event(&format!("evt_{n:02}"), companies[n % 3], kinds[(n / 3) % 3]))
        .collect();
    let results = recorded_at_once(&store, events.clone()).await;
    let mut delivery_ids = BTreeSet::new();
    for (event, recorded) in results {
        let deliveries = recorded.unwrap();
        let partners: Vec<&str> = deliveries.iter().map(|d| d.partner_id.as_str()).collect();
        let expected: &[&str] = match (event.company_id.as_str(), event.object_type.as_str()) {
            ("c1", "itinerary") => &["p1", "p2"],
            ("c1", "profile") => &["p2"],
            ("c2", "itinerary") => &["p3"],
            _ => &[],
        };
        assert_eq!(partners, expected, "{}", event.id);
        for delivery in &deliveries {
            assert_eq!(delivery.event_id, event.id);
            assert_eq!(
                (delivery.status.as_str(), delivery.attempts),
                ("pending", 0)
            );
            assert!(
                delivery_ids.insert(delivery.id.clone()),
                "one id per delivery"
            );
        }
        assert_eq!(store.deliveries_of(&event.id).await.unwrap(), deliveries);
    }
    // Every event has its own place in the company feed.
    let heads = settled(&store).await;
    let feed = store
        .company_events_between(0, heads.company, 1000)
        .await
        .unwrap();
    let in_feed: BTreeSet<String> = feed.iter().map(|e| e.event.id.clone()).collect();
    let all: BTreeSet<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(in_feed, all);
    assert_eq!(feed.len(), all.len());
}

async fn a_failing_event_fails_alone_among_events_recorded_at_once(backend: Backend) {
    let (store, _db) = open(backend).await;
    subscribed(&store, &[("p1", "c1", "itinerary")]).await;
    store
        .record_company_event(&event("evt_taken", "c1", "itinerary"))
        .await
        .unwrap();
    // An id already taken fails its own write; the others recorded with it are kept.
    let mut events: Vec<_> = (0..20)
        .map(|n| event(&format!("evt_{n:02}"), "c1", "itinerary"))
        .collect();
    events.insert(10, event("evt_taken", "c1", "itinerary"));
    let results = recorded_at_once(&store, events).await;
    for (event, recorded) in results {
        match event.id.as_str() {
            "evt_taken" => assert!(recorded.is_err()),
            id => {
                let deliveries = recorded.unwrap();
                assert_eq!(deliveries.len(), 1, "{id}");
                assert_eq!(store.deliveries_of(id).await.unwrap(), deliveries);
            }
        }
    }
    assert_eq!(
        store.deliveries_of("evt_taken").await.unwrap().len(),
        1,
        "the first event's deliveries only"
    );
}
