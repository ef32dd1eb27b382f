//! Claims and the per-partner limit: no partner holds more than its share of deliveries under
//! live leases, whoever holds them, so one that never answers cannot take every slot.

use maestro::store::{
    AttemptRecord, ClaimedDelivery, DeliveryNext, DynStore, FinishedAttempt, NewCompanyEvent,
    Subscription,
};
use time::{Duration, OffsetDateTime, macros::datetime};

use super::{claim, import, open};
use crate::helpers::Backend;

crate::on_both_backends!(
    a_partner_holds_at_most_its_limit_of_live_claims,
    the_oldest_due_come_first_whatever_the_partner,
    the_backlog_counts_each_partners_pending_deliveries,
    many_attempts_are_recorded_together_each_fenced_on_its_claim,
);

const LEASE: Duration = Duration::seconds(60);

/// `partner`, subscribed to company c1's events of `object_type`, owed `count` deliveries
/// due at `due`.
async fn owed(
    store: &DynStore,
    partner: &str,
    object_type: &str,
    count: usize,
    due: OffsetDateTime,
) -> Vec<String> {
    store
        .import_partner(&import(partner, "{}", None))
        .await
        .unwrap();
    store
        .subscribe(&Subscription {
            partner_id: partner.into(),
            company_id: "c1".into(),
            object_type: object_type.into(),
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..count {
        let recorded = store
            .record_company_event(&NewCompanyEvent {
                id: format!("evt_{partner}_{n}"),
                object_type: object_type.into(),
                event_type: "CREATE".into(),
                company_id: "c1".into(),
                user_login: Some("cm@example.com".into()),
                trip_id: Some(format!("trip-{n}")),
                occurred_at: due,
                object: None,
                received_at: due,
            })
            .await
            .unwrap();
        ids.extend(recorded.into_iter().map(|d| d.id));
    }
    ids
}

fn of(claimed: &[ClaimedDelivery], partner: &str) -> usize {
    claimed.iter().filter(|d| d.partner_id == partner).count()
}

async fn a_partner_holds_at_most_its_limit_of_live_claims(backend: Backend) {
    let (store, _db) = open(backend).await;
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    let limit = 3;
    // The stuck partner's deliveries are the oldest: first in line.
    let stuck = owed(&store, "stuck", "itinerary", 5, t0 - Duration::minutes(1)).await;
    owed(&store, "healthy", "profile", 2, t0).await;

    let first = store
        .claim_deliveries("w1", claim(t0, t0 + LEASE, 100, limit))
        .await
        .unwrap();
    assert_eq!((of(&first, "stuck"), of(&first, "healthy")), (3, 2));

    // Another claimant: the stuck partner's share is taken, whoever took it.
    let second = store
        .claim_deliveries("w2", claim(t0, t0 + LEASE, 100, limit))
        .await
        .unwrap();
    assert!(
        second.is_empty(),
        "two of its deliveries are due, none is taken"
    );

    // An attempt that ends gives its room back.
    let ended = first.iter().find(|d| d.partner_id == "stuck").unwrap();
    let attempt = AttemptRecord {
        attempt: 1,
        started_at: t0,
        duration_ms: 15_000,
        status_code: None,
        error: Some("no answer within 15s".into()),
        response_body: None,
        outcome: "retry".into(),
    };
    assert!(
        store
            .finish_attempt(
                "w1",
                &ended.id,
                &attempt,
                DeliveryNext::RetryAt(t0 + Duration::hours(1))
            )
            .await
            .unwrap()
    );
    let third = store
        .claim_deliveries("w2", claim(t0, t0 + LEASE, 100, limit))
        .await
        .unwrap();
    assert_eq!(of(&third, "stuck"), 1);
    assert!(stuck.contains(&third[0].id) && third[0].id != ended.id);

    // Once the leases lapse they hold nothing: the partner's due deliveries are claimable again,
    // up to its limit.
    let later = t0 + LEASE;
    let after_lapse = store
        .claim_deliveries("w3", claim(later, later + LEASE, 100, limit))
        .await
        .unwrap();
    assert_eq!(
        (of(&after_lapse, "stuck"), of(&after_lapse, "healthy")),
        (3, 2)
    );
    assert!(after_lapse.iter().all(|d| d.id != ended.id), "not due yet");
}

async fn the_oldest_due_come_first_whatever_the_partner(backend: Backend) {
    let (store, _db) = open(backend).await;
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    owed(&store, "newer", "itinerary", 3, t0).await;
    let older = owed(&store, "older", "profile", 2, t0 - Duration::minutes(1)).await;
    let claimed = store
        .claim_deliveries("w", claim(t0, t0 + LEASE, 3, 10))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(older.iter().all(|id| claimed.iter().any(|d| &d.id == id)));
    assert_eq!(of(&claimed, "newer"), 1);
}

/// The metrics' backlog: every partner, those owed nothing included; claimed deliveries still
/// count (they are not delivered yet), ended ones do not.
async fn the_backlog_counts_each_partners_pending_deliveries(backend: Backend) {
    let (store, _db) = open(backend).await;
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    owed(&store, "busy", "itinerary", 3, t0 - Duration::minutes(2)).await;
    owed(&store, "idle", "profile", 0, t0).await;
    let claimed = store
        .claim_deliveries("w", claim(t0, t0 + LEASE, 2, 10))
        .await
        .unwrap();
    let attempt = AttemptRecord {
        attempt: 1,
        started_at: t0,
        duration_ms: 12,
        status_code: Some(200),
        error: None,
        response_body: None,
        outcome: "delivered".into(),
    };
    let delivered = &claimed[0].id;
    assert!(
        store
            .finish_attempt("w", delivered, &attempt, DeliveryNext::Delivered)
            .await
            .unwrap()
    );
    let backlog = store.delivery_backlog().await.unwrap();
    let of = |partner: &str| backlog.iter().find(|b| b.partner_id == partner).cloned();
    let busy = of("busy").expect("a partner owed deliveries is listed");
    assert_eq!(busy.pending, 2, "one delivered, one claimed, one waiting");
    assert_eq!(busy.oldest_next_attempt, Some(t0 - Duration::minutes(2)));
    let idle = of("idle").expect("a partner owed nothing is listed too");
    assert_eq!((idle.pending, idle.oldest_next_attempt), (0, None));
}

/// Group commit: one call records the outcomes of many attempts, each as `finish_attempt`
/// would — logged, moved on if the claim is still held (the fence), a 410 ending its
/// subscription — and says for each whether its claim was still held.
async fn many_attempts_are_recorded_together_each_fenced_on_its_claim(backend: Backend) {
    let (store, _db) = open(backend).await;
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    owed(&store, "acme", "itinerary", 4, t0).await;
    let claimed = store
        .claim_deliveries("w1", claim(t0, t0 + LEASE, 4, 10))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    // The last one's lease lapses and another worker takes it over.
    let later = t0 + LEASE + Duration::seconds(1);
    let lost = claimed[3].id.clone();
    store.release_claims().await.unwrap();
    let retaken = store
        .claim_deliveries("w2", claim(later, later + LEASE, 4, 10))
        .await
        .unwrap();
    assert_eq!(retaken.len(), 4, "every claim was released");
    // w2 gives three back by recording them as retried far ahead; it keeps `lost`.
    let attempt = |n: i64, status: Option<i64>, outcome: &str| AttemptRecord {
        attempt: n,
        started_at: later,
        duration_ms: 3,
        status_code: status,
        error: (outcome != "delivered").then(|| format!("{outcome} happened")),
        response_body: Some("ok".into()),
        outcome: outcome.into(),
    };
    let handed_back: Vec<FinishedAttempt> = retaken
        .iter()
        .filter(|d| d.id != lost)
        .map(|d| FinishedAttempt {
            delivery_id: d.id.clone(),
            attempt: attempt(1, Some(503), "retry"),
            next: DeliveryNext::RetryAt(later),
        })
        .collect();
    assert_eq!(
        store.finish_attempts("w2", &handed_back).await.unwrap(),
        [true, true, true]
    );
    let again = store
        .claim_deliveries("w1", claim(later, later + LEASE, 3, 10))
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    let mut finished: Vec<FinishedAttempt> = vec![
        FinishedAttempt {
            delivery_id: again[0].id.clone(),
            attempt: attempt(2, Some(200), "delivered"),
            next: DeliveryNext::Delivered,
        },
        FinishedAttempt {
            delivery_id: again[1].id.clone(),
            attempt: attempt(2, None, "retry"),
            next: DeliveryNext::RetryAt(later + Duration::minutes(5)),
        },
        FinishedAttempt {
            delivery_id: again[2].id.clone(),
            attempt: attempt(2, Some(410), "gone"),
            next: DeliveryNext::Gone,
        },
    ];
    // w1 no longer holds `lost`: its attempt is logged, the delivery left to w2.
    finished.push(FinishedAttempt {
        delivery_id: lost.clone(),
        attempt: attempt(1, Some(200), "delivered"),
        next: DeliveryNext::Delivered,
    });
    assert_eq!(
        store.finish_attempts("w1", &finished).await.unwrap(),
        [true, true, true, false]
    );
    let status = |id: String| {
        let store = store.clone();
        async move {
            let (summary, attempts) = store.delivery(&id).await.unwrap().unwrap();
            (summary.status, summary.attempts, attempts.len())
        }
    };
    assert_eq!(
        status(again[0].id.clone()).await,
        ("delivered".into(), 2, 2)
    );
    let (retried, _) = store.delivery(&again[1].id).await.unwrap().unwrap();
    assert_eq!(
        (retried.status.as_str(), retried.next_attempt_at),
        ("pending", Some(later + Duration::minutes(5)))
    );
    assert_eq!(retried.last_status, None);
    assert_eq!(status(again[2].id.clone()).await, ("failed".into(), 2, 2));
    assert!(
        store.subscriptions("c1").await.unwrap().is_empty(),
        "a 410 ends the subscription"
    );
    let (held, attempts) = store.delivery(&lost).await.unwrap().unwrap();
    assert_eq!((held.status.as_str(), attempts.len()), ("pending", 1));
    assert!(store.finish_attempts("w1", &[]).await.unwrap().is_empty());
}
