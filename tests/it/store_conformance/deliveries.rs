//! Deliveries: a claim exclusive until its lease lapses, a lapsed claim that cannot overwrite its
//! successor's outcome, the next due delivery, replays, and the snapshots notifications point to.

use maestro::store::{
    AttemptRecord, DeliveryFilter, DeliveryNext, DynStore, NewCompanyEvent, ReplayOutcome,
    SnapshotKey, Subscription,
};
use time::{OffsetDateTime, macros::datetime};

use super::{UNCAPPED, claim, import, next_due, open};
use crate::helpers::Backend;

crate::on_both_backends!(
    a_claim_is_exclusive_until_its_lease_lapses,
    a_lapsed_claim_cannot_overwrite_its_successor,
    the_next_due_delivery_is_the_first_not_yet_due,
    replays_and_snapshots,
);

/// A partner subscribed to company c1's itineraries, and `events` events recorded for it.
pub(super) async fn deliveries_owed(
    store: &DynStore,
    events: usize,
    at: OffsetDateTime,
) -> Vec<String> {
    store
        .import_partner(&import("p", "{}", None))
        .await
        .unwrap();
    store
        .subscribe(&Subscription {
            partner_id: "p".into(),
            company_id: "c1".into(),
            object_type: "itinerary".into(),
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..events {
        let recorded = store
            .record_company_event(&NewCompanyEvent {
                id: format!("evt_{n}"),
                object_type: "itinerary".into(),
                event_type: "CREATE".into(),
                company_id: "c1".into(),
                user_login: Some("cm@example.com".into()),
                trip_id: Some(format!("trip-{n}")),
                occurred_at: at,
                object: Some(format!("{{\"n\":{n}}}")),
                received_at: at,
            })
            .await
            .unwrap();
        ids.extend(recorded.into_iter().map(|d| d.id));
    }
    ids
}

fn attempt(number: i64, at: OffsetDateTime, outcome: &str) -> AttemptRecord {
    AttemptRecord {
        attempt: number,
        started_at: at,
        duration_ms: 12,
        status_code: Some(503),
        error: Some("the partner answered HTTP 503".into()),
        response_body: Some("busy".into()),
        outcome: outcome.into(),
    }
}

async fn a_claim_is_exclusive_until_its_lease_lapses(backend: Backend) {
    let (store, _db) = open(backend).await;
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    let ids = deliveries_owed(&store, 3, t0).await;
    assert_eq!(ids.len(), 3);
    let lease = time::Duration::seconds(60);
    let first = store
        .claim_deliveries("a", claim(t0, t0 + lease, 2, UNCAPPED))
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].event.company_id, "c1");
    assert_eq!(first[0].attempts, 0);
    assert_eq!(first[0].due_at, t0, "due when its event arrived");
    let second = store
        .claim_deliveries("b", claim(t0, t0 + lease, 10, UNCAPPED))
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "only the unclaimed one");
    assert!(first.iter().all(|d| d.id != second[0].id));
    assert!(
        store
            .claim_deliveries("c", claim(t0, t0 + lease, 10, UNCAPPED))
            .await
            .unwrap()
            .is_empty()
    );
    // Due again when the leases lapse.
    assert_eq!(next_due(&store, t0).await, Some(t0 + lease));
    let later = t0 + lease;
    assert_eq!(
        store
            .claim_deliveries("c", claim(later, later + lease, 10, UNCAPPED))
            .await
            .unwrap()
            .len(),
        3
    );
    // A released claim is claimable at once.
    assert_eq!(store.release_claims().await.unwrap(), 3);
    assert_eq!(
        store
            .claim_deliveries("d", claim(t0, t0 + lease, 10, UNCAPPED))
            .await
            .unwrap()
            .len(),
        3
    );
}

async fn a_lapsed_claim_cannot_overwrite_its_successor(backend: Backend) {
    let (store, _db) = open(backend).await;
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    let id = deliveries_owed(&store, 1, t0).await.remove(0);
    let lease = time::Duration::seconds(60);
    store
        .claim_deliveries("slow", claim(t0, t0 + lease, 1, UNCAPPED))
        .await
        .unwrap();
    let later = t0 + lease;
    store
        .claim_deliveries("fast", claim(later, later + lease, 1, UNCAPPED))
        .await
        .unwrap();
    assert!(
        store
            .finish_attempt(
                "fast",
                &id,
                &attempt(1, later, "delivered"),
                DeliveryNext::Delivered
            )
            .await
            .unwrap()
    );
    let retry_at = t0 + time::Duration::minutes(5);
    assert!(
        !store
            .finish_attempt(
                "slow",
                &id,
                &attempt(1, t0, "retry"),
                DeliveryNext::RetryAt(retry_at)
            )
            .await
            .unwrap()
    );
    let (summary, attempts) = store.delivery(&id).await.unwrap().unwrap();
    assert_eq!(summary.status, "delivered");
    assert_eq!(summary.next_attempt_at, None);
    assert_eq!(attempts.len(), 2, "both attempts are logged");
    assert_eq!(next_due(&store, later).await, None);
}

async fn the_next_due_delivery_is_the_first_not_yet_due(backend: Backend) {
    let (store, _db) = open(backend).await;
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    let ids = deliveries_owed(&store, 3, t0).await;
    let lease = time::Duration::seconds(60);
    // Due at t0 and not claimed (held back, say, by the partner's limit): not what an idle
    // worker waits for.
    assert_eq!(next_due(&store, t0).await, None);
    let claimed = store
        .claim_deliveries("w", claim(t0, t0 + lease, 2, UNCAPPED))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(next_due(&store, t0).await, Some(t0 + lease));
    // One claimed delivery is to be retried in five minutes, the other in ten seconds: the
    // sooner retry comes first; the one still held back still does not count.
    let (soon, late) = (
        t0 + time::Duration::seconds(10),
        t0 + time::Duration::minutes(5),
    );
    for (delivery, retry_at) in claimed.iter().zip([late, soon]) {
        assert!(
            store
                .finish_attempt(
                    "w",
                    &delivery.id,
                    &attempt(1, t0, "retry"),
                    DeliveryNext::RetryAt(retry_at)
                )
                .await
                .unwrap()
        );
    }
    assert_eq!(next_due(&store, t0).await, Some(soon));
    assert_eq!(next_due(&store, soon).await, Some(late));
    assert_eq!(next_due(&store, late).await, None);
    assert_eq!(ids.len(), 3);
    // A claim says when each delivery fell due: a retry at its time, however late it is taken.
    let retried = store
        .claim_deliveries("w", claim(late, late + lease, 3, UNCAPPED))
        .await
        .unwrap();
    let mut due: Vec<_> = retried.iter().map(|d| (d.attempts, d.due_at)).collect();
    due.sort();
    assert_eq!(due, [(0, t0), (1, soon), (1, late)]);
}

async fn replays_and_snapshots(backend: Backend) {
    let (store, _db) = open(backend).await;
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    let id = deliveries_owed(&store, 2, t0).await.remove(0);
    assert_eq!(
        store.replay_delivery(&id, t0).await.unwrap(),
        ReplayOutcome::StillPending
    );
    assert_eq!(
        store.replay_delivery("msg_none", t0).await.unwrap(),
        ReplayOutcome::NotFound
    );
    let lease = time::Duration::seconds(60);
    let claimed = store
        .claim_deliveries("w", claim(t0, t0 + lease, 1, UNCAPPED))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, id);
    let failed = attempt(1, t0, "failed");
    store
        .finish_attempt("w", &id, &failed, DeliveryNext::Gone)
        .await
        .unwrap();
    assert!(
        store.subscriptions("c1").await.unwrap().is_empty(),
        "410 ends the subscription"
    );
    let failed_list = store
        .deliveries(&DeliveryFilter {
            status: Some("failed".into()),
            partner_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(failed_list.len(), 1);
    assert_eq!(failed_list[0].last_status, Some(503));
    let t1 = t0 + time::Duration::hours(1);
    assert_eq!(
        store.replay_delivery(&id, t1).await.unwrap(),
        ReplayOutcome::Replayed
    );
    let again = store
        .claim_deliveries("w", claim(t1, t1 + lease, 10, UNCAPPED))
        .await
        .unwrap();
    let replayed = again.iter().find(|d| d.id == id).unwrap();
    assert_eq!((replayed.attempts, replayed.replayed_after), (1, 1));

    let snapshot = store
        .snapshot("c1", &SnapshotKey::Trip("trip-1".into()))
        .await
        .unwrap();
    assert_eq!(snapshot.as_deref(), Some("{\"n\":1}"));
    assert_eq!(
        store
            .snapshot("c2", &SnapshotKey::Trip("trip-1".into()))
            .await
            .unwrap(),
        None
    );
}
