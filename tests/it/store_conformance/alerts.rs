//! Alerts: created with their first revision and event, an extRef unique within its partner and
//! company (also when two creates race), updates found by id or extRef within their owner, an
//! identical update writing nothing, and the outbox paging in order.

use maestro::store::{
    AlertContent, AlertSelector, AlertTarget, CreateOutcome, EVENT_ALERT_CREATED,
    EVENT_ALERT_UPDATED, UpdateOutcome,
};

use super::{change, new_alert, open, owner};
use crate::helpers::Backend;

crate::on_both_backends!(
    creating_an_alert_writes_revision_and_event,
    an_ext_ref_is_unique_per_partner_and_company,
    updates_select_by_id_or_ext_ref_within_the_owner,
    an_update_never_changes_the_ext_ref,
    an_identical_update_writes_nothing,
    the_outbox_pages_in_order,
    concurrent_creates_of_one_ext_ref_yield_one_alert,
);

async fn creating_an_alert_writes_revision_and_event(backend: Backend) {
    let (store, _db) = open(backend).await;
    let alert = new_alert("a1", "c1", "r1", "one");
    assert_eq!(
        store.create_alert(&alert).await.unwrap(),
        CreateOutcome::Created
    );
    let stored = store.alert(&owner("c1"), "a1").await.unwrap().unwrap();
    // Where the metadata lay is a hint for writing; a record read back does not carry it.
    let written = AlertContent {
        payload_metadata: None,
        ..alert.content.clone()
    };
    assert_eq!(
        stored.content, written,
        "every field round-trips, the payload whole, expiry to the millisecond"
    );
    assert_eq!(stored.revision, 1);
    assert!(
        store.alert(&owner("c2"), "a1").await.unwrap().is_none(),
        "invisible to another company"
    );
    let revisions = store.alert_revisions("a1").await.unwrap();
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].payload, alert.content.payload);
    assert_eq!(revisions[0].rendering, *alert.content.rendering);
    let events = store.outbox_after(0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, EVENT_ALERT_CREATED);
    assert_eq!(
        (events[0].alert_id.as_str(), events[0].user_id.as_str()),
        ("a1", "user-1")
    );
}

async fn an_ext_ref_is_unique_per_partner_and_company(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .create_alert(&new_alert("a1", "c1", "r1", "one"))
        .await
        .unwrap();
    assert_eq!(
        store
            .create_alert(&new_alert("a2", "c1", "r1", "one"))
            .await
            .unwrap(),
        CreateOutcome::Existing {
            alert_id: "a1".into(),
            same_body: true
        }
    );
    assert_eq!(
        store
            .create_alert(&new_alert("a3", "c1", "r1", "two"))
            .await
            .unwrap(),
        CreateOutcome::Existing {
            alert_id: "a1".into(),
            same_body: false
        }
    );
    assert_eq!(
        store
            .create_alert(&new_alert("a4", "c2", "r1", "one"))
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    let mut other_partner = new_alert("a5", "c1", "r1", "one");
    other_partner.owner.partner_id = "q".into();
    assert_eq!(
        store.create_alert(&other_partner).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(store.outbox_after(0, 10).await.unwrap().len(), 3);
}

async fn updates_select_by_id_or_ext_ref_within_the_owner(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .create_alert(&new_alert("a1", "c1", "r1", "one"))
        .await
        .unwrap();
    let by_ref = AlertTarget {
        owner: owner("c1"),
        selector: AlertSelector::ExtRef("r1".into()),
    };
    assert_eq!(
        store
            .update_alert(&by_ref, &change("r1", "two"))
            .await
            .unwrap(),
        UpdateOutcome::Updated {
            alert_id: "a1".into(),
            revision: 2
        }
    );
    let by_id = AlertTarget {
        owner: owner("c1"),
        selector: AlertSelector::Id("a1".into()),
    };
    assert_eq!(
        store
            .update_alert(&by_id, &change("r1", "three"))
            .await
            .unwrap(),
        UpdateOutcome::Updated {
            alert_id: "a1".into(),
            revision: 3
        }
    );
    for stranger in [
        AlertTarget {
            owner: owner("c2"),
            selector: AlertSelector::Id("a1".into()),
        },
        AlertTarget {
            owner: owner("c2"),
            selector: AlertSelector::ExtRef("r1".into()),
        },
        AlertTarget {
            owner: owner("c1"),
            selector: AlertSelector::Id("nope".into()),
        },
    ] {
        assert_eq!(
            store
                .update_alert(&stranger, &change("r1", "x"))
                .await
                .unwrap(),
            UpdateOutcome::NotFound
        );
    }
    let stored = store.alert(&owner("c1"), "a1").await.unwrap().unwrap();
    assert_eq!(stored.revision, 3);
    assert_eq!(stored.content.body_hash, "hash-three");
    let revisions: Vec<_> = store
        .alert_revisions("a1")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.body_hash)
        .collect();
    assert_eq!(revisions, ["hash-one", "hash-two", "hash-three"]);
    let renderings: Vec<_> = store
        .alert_revisions("a1")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.rendering.text)
        .collect();
    assert_eq!(
        renderings,
        ["one", "two", "three"],
        "each revision keeps its rendering"
    );
    let events: Vec<_> = store
        .outbox_after(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type, e.revision))
        .collect();
    assert_eq!(
        events,
        [
            (EVENT_ALERT_CREATED.into(), 1),
            (EVENT_ALERT_UPDATED.into(), 2),
            (EVENT_ALERT_UPDATED.into(), 3)
        ]
    );
}

async fn an_update_never_changes_the_ext_ref(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .create_alert(&new_alert("a1", "c1", "r1", "one"))
        .await
        .unwrap();
    let by_id = AlertTarget {
        owner: owner("c1"),
        selector: AlertSelector::Id("a1".into()),
    };
    assert_eq!(
        store
            .update_alert(&by_id, &change("r2", "two"))
            .await
            .unwrap(),
        UpdateOutcome::ExtRefMismatch {
            alert_id: "a1".into()
        }
    );
    assert_eq!(store.alert_revisions("a1").await.unwrap().len(), 1);
}

async fn an_identical_update_writes_nothing(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .create_alert(&new_alert("a1", "c1", "r1", "one"))
        .await
        .unwrap();
    let by_id = AlertTarget {
        owner: owner("c1"),
        selector: AlertSelector::Id("a1".into()),
    };
    assert_eq!(
        store
            .update_alert(&by_id, &change("r1", "one"))
            .await
            .unwrap(),
        UpdateOutcome::Unchanged {
            alert_id: "a1".into(),
            revision: 1
        }
    );
    assert_eq!(store.outbox_after(0, 10).await.unwrap().len(), 1);
}

async fn the_outbox_pages_in_order(backend: Backend) {
    let (store, _db) = open(backend).await;
    for i in 0..5 {
        store
            .create_alert(&new_alert(&format!("a{i}"), "c1", &format!("r{i}"), "x"))
            .await
            .unwrap();
    }
    let first = store.outbox_after(0, 3).await.unwrap();
    assert_eq!(first.len(), 3);
    let rest = store.outbox_after(first[2].id, 3).await.unwrap();
    assert_eq!(rest.len(), 2);
    let ids: Vec<_> = first
        .iter()
        .chain(&rest)
        .map(|e| e.alert_id.clone())
        .collect();
    assert_eq!(ids, ["a0", "a1", "a2", "a3", "a4"]);
    assert!(
        first
            .iter()
            .chain(&rest)
            .collect::<Vec<_>>()
            .windows(2)
            .all(|w| w[0].id < w[1].id)
    );
}

async fn concurrent_creates_of_one_ext_ref_yield_one_alert(backend: Backend) {
    let (store, _db) = open(backend).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .create_alert(&new_alert(&format!("a{i}"), "c1", "r1", "same"))
                .await
                .unwrap()
        });
    }
    let outcomes = tasks.join_all().await;
    let created = outcomes
        .iter()
        .filter(|o| **o == CreateOutcome::Created)
        .count();
    assert_eq!(created, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(
        o,
        CreateOutcome::Created
            | CreateOutcome::Existing {
                same_body: true,
                ..
            }
    )));
    assert_eq!(store.outbox_after(0, 10).await.unwrap().len(), 1);
}
