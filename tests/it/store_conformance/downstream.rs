//! Downstream publishing's storage: the publisher's lease and cursor, the two feeds read below
//! the horizon, and the horizon itself — on PostgreSQL an id committed late is waited for,
//! never skipped.

use maestro::{
    downstream::Horizon,
    store::{
        AlertSelector, AlertTarget, DynStore, EVENT_ALERT_CREATED, EVENT_ALERT_EXPIRED,
        EVENT_ALERT_UPDATED, InboxMark, InboxOwner, NewCompanyEvent, PublishCursor,
    },
};
use time::{Duration, OffsetDateTime, macros::datetime};

use super::{change, import, new_alert, open, owner};
use crate::helpers::Backend;

crate::on_both_backends!(
    one_instance_holds_the_publishers_lease_and_its_cursor_only_moves_forward,
    the_feeds_carry_each_event_as_of_its_time_in_order,
    the_lag_counts_from_the_oldest_event_past_the_cursor,
);

const LEASE: Duration = Duration::seconds(30);

async fn one_instance_holds_the_publishers_lease_and_its_cursor_only_moves_forward(
    backend: Backend,
) {
    let (store, _db) = open(backend).await;
    let now = OffsetDateTime::now_utc();
    let first = store.claim_publisher("a", now, now + LEASE).await.unwrap();
    assert!(first.held);
    assert_eq!(first.cursor, PublishCursor::default(), "a new database");
    let second = store.claim_publisher("b", now, now + LEASE).await.unwrap();
    assert!(!second.held, "the lease is a's");
    assert!(
        store
            .claim_publisher("a", now, now + LEASE)
            .await
            .unwrap()
            .held,
        "a renews its own"
    );

    let moved = PublishCursor {
        alerts_after: 7,
        company_after: 3,
    };
    assert!(
        store
            .advance_publisher("a", moved, now + LEASE)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_publisher("b", PublishCursor::default(), now + LEASE)
            .await
            .unwrap(),
        "only the holder moves the cursor"
    );
    let back = PublishCursor {
        alerts_after: 2,
        company_after: 9,
    };
    assert!(
        store
            .advance_publisher("a", back, now + LEASE)
            .await
            .unwrap()
    );
    let seen = store.claim_publisher("b", now, now + LEASE).await.unwrap();
    assert_eq!(
        seen.cursor,
        PublishCursor {
            alerts_after: 7,
            company_after: 9
        },
        "never back, and b sees where a stands"
    );

    // A lapsed lease is taken over; then the old holder can no longer move the cursor.
    let later = now + LEASE + Duration::seconds(1);
    assert!(
        store
            .claim_publisher("b", later, later + LEASE)
            .await
            .unwrap()
            .held
    );
    assert!(
        !store
            .advance_publisher("a", moved, later + LEASE)
            .await
            .unwrap()
    );
    // A release hands it over at once.
    store.release_publisher(Some("a")).await.unwrap();
    assert!(
        !store
            .claim_publisher("a", later, later + LEASE)
            .await
            .unwrap()
            .held
    );
    store.release_publisher(Some("b")).await.unwrap();
    assert!(
        store
            .claim_publisher("a", later, later + LEASE)
            .await
            .unwrap()
            .held
    );
    store.release_publisher(None).await.unwrap();
    assert!(
        store
            .claim_publisher("c", later, later + LEASE)
            .await
            .unwrap()
            .held
    );
}

/// Everything up to the heads, settled as the publisher settles it.
pub(super) async fn settled(store: &DynStore) -> maestro::downstream::Settled {
    let mut horizon = Horizon::default();
    let mut at = horizon.observe(&store.outbox_horizon(horizon.beyond()).await.unwrap());
    // On PostgreSQL the first observation waits for the transactions under way, which a
    // second one finds ended (nothing else writes here).
    // (Other tests' transactions on the server may run for a while: up to 10 s.)
    for _ in 0..500 {
        if !horizon.waiting() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        at = horizon.observe(&store.outbox_horizon(horizon.beyond()).await.unwrap());
    }
    at
}

async fn the_feeds_carry_each_event_as_of_its_time_in_order(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .import_partner(&import("p", "{}", None))
        .await
        .unwrap();
    store
        .create_alert(&new_alert("a1", "c1", "x1", "one"))
        .await
        .unwrap();
    let mut later = change("x1", "two");
    later.content.template_id = "T2".into();
    later.content.expires_at = datetime!(2031-01-01 00:00 UTC);
    store
        .update_alert(
            &AlertTarget {
                owner: owner("c1"),
                selector: AlertSelector::Id("a1".into()),
            },
            &later,
        )
        .await
        .unwrap();
    let reader = InboxOwner {
        company_id: "c1".into(),
        user_id: "user-1".into(),
    };
    let before_expiry = datetime!(2030-12-01 00:00 UTC);
    store
        .mark_inbox(&reader, "a1", InboxMark::Read, before_expiry)
        .await
        .unwrap();
    store
        .expire_alerts(datetime!(2031-06-01 00:00 UTC), 10)
        .await
        .unwrap();
    store
        .record_company_event(&NewCompanyEvent {
            id: "evt_1".into(),
            object_type: "itinerary".into(),
            event_type: "CREATE".into(),
            company_id: "c1".into(),
            user_login: Some("cm@example.com".into()),
            trip_id: Some("trip-1".into()),
            occurred_at: datetime!(2030-01-01 00:00 UTC),
            object: None,
            received_at: datetime!(2030-01-01 00:00:01 UTC),
        })
        .await
        .unwrap();

    let heads = settled(&store).await;
    let events = store.outbox_between(0, heads.alerts, 100).await.unwrap();
    let seen: Vec<(&str, i64, Option<&str>, Option<OffsetDateTime>)> = events
        .iter()
        .map(|e| {
            (
                e.event.event_type.as_str(),
                e.event.revision,
                e.template_id.as_deref(),
                e.expires_at,
            )
        })
        .collect();
    let first_expiry = datetime!(2030-02-01 00:00:00.123 UTC);
    let second_expiry = datetime!(2031-01-01 00:00 UTC);
    assert_eq!(
        seen,
        [
            (EVENT_ALERT_CREATED, 1, Some("T"), Some(first_expiry)),
            (EVENT_ALERT_UPDATED, 2, Some("T2"), Some(second_expiry)),
            ("alert.read", 2, Some("T2"), Some(second_expiry)),
            (EVENT_ALERT_EXPIRED, 2, Some("T2"), Some(second_expiry)),
        ],
        "each event says what the alert was at its time"
    );
    let ids: Vec<i64> = events.iter().map(|e| e.event.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // A window of the feed.
    let window = store.outbox_between(ids[0], ids[2], 100).await.unwrap();
    assert_eq!(window.len(), 2);
    assert_eq!(
        store.outbox_between(ids[0], ids[3], 1).await.unwrap()[0]
            .event
            .id,
        ids[1]
    );

    let company = store
        .company_events_between(0, heads.company, 100)
        .await
        .unwrap();
    assert_eq!(company.len(), 1);
    assert_eq!(company[0].event.id, "evt_1");
    assert_eq!(company[0].event.trip_id.as_deref(), Some("trip-1"));
    assert_eq!(company[0].received_at, datetime!(2030-01-01 00:00:01 UTC));
    assert!(
        store
            .company_events_between(company[0].position, heads.company, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn the_lag_counts_from_the_oldest_event_past_the_cursor(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .import_partner(&import("p", "{}", None))
        .await
        .unwrap();
    assert_eq!(
        store
            .oldest_unpublished(PublishCursor::default())
            .await
            .unwrap(),
        None
    );
    let before = OffsetDateTime::now_utc() - Duration::seconds(1);
    store
        .create_alert(&new_alert("a1", "c1", "x1", "one"))
        .await
        .unwrap();
    let after = OffsetDateTime::now_utc() + Duration::seconds(1);
    let oldest = store
        .oldest_unpublished(PublishCursor::default())
        .await
        .unwrap()
        .expect("one event waits");
    assert!(before <= oldest && oldest <= after, "{oldest}");
    let heads = settled(&store).await;
    let past = PublishCursor {
        alerts_after: heads.alerts,
        company_after: 0,
    };
    assert_eq!(store.oldest_unpublished(past).await.unwrap(), None);
    // A company event counts from when it was received, whatever it says it occurred at.
    let received = datetime!(2030-01-01 00:00:01 UTC);
    store
        .record_company_event(&NewCompanyEvent {
            id: "evt_1".into(),
            object_type: "fop".into(),
            event_type: "UPDATE".into(),
            company_id: "c1".into(),
            user_login: None,
            trip_id: None,
            occurred_at: datetime!(2020-01-01 00:00 UTC),
            object: None,
            received_at: received,
        })
        .await
        .unwrap();
    assert_eq!(
        store.oldest_unpublished(past).await.unwrap(),
        Some(received)
    );
}

#[tokio::test]
async fn postgres_an_id_committed_late_is_waited_for_not_skipped() {
    if !crate::helpers::backend_available(Backend::Postgres).await {
        return;
    }
    let (store, db) = open(Backend::Postgres).await;
    store
        .import_partner(&import("p", "{}", None))
        .await
        .unwrap();
    store
        .create_alert(&new_alert("a1", "c1", "x1", "one"))
        .await
        .unwrap();
    store
        .create_alert(&new_alert("a2", "c1", "x2", "two"))
        .await
        .unwrap();
    let start = settled(&store).await;

    // A transaction takes an outbox id (after a first write, as every writer does) and holds
    // it open while a later one commits a higher id.
    let mut slow = db.side_connection().await;
    slow.execute("BEGIN").await;
    slow.execute("UPDATE alerts SET title = 'slow' WHERE id = 'a1'")
        .await;
    slow.execute(
        "INSERT INTO outbox (event_type, alert_id, revision, partner_id, company_id, user_id, \
         occurred_at) VALUES ('alert.updated', 'a1', 9, 'p', 'c1', 'user-1', now())",
    )
    .await;
    store
        .create_alert(&new_alert("a3", "c1", "x3", "three"))
        .await
        .unwrap();

    let mut horizon = Horizon::default();
    let observe = async |horizon: &mut Horizon| {
        let seen = store.outbox_horizon(horizon.beyond()).await.unwrap();
        horizon.observe(&seen)
    };
    horizon.observe(&store.outbox_horizon((0, 0)).await.unwrap());
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let at = observe(&mut horizon).await;
        assert!(
            at.alerts <= start.alerts,
            "nothing past the open transaction's id is final while it runs"
        );
    }
    slow.execute("COMMIT").await;
    let mut at = start;
    for _ in 0..500 {
        at = observe(&mut horizon).await;
        if at.alerts > start.alerts + 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let late: Vec<(String, i64)> = store
        .outbox_between(start.alerts, at.alerts, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event.alert_id, e.event.revision))
        .collect();
    assert_eq!(
        late,
        [("a1".to_owned(), 9), ("a3".to_owned(), 1)],
        "the late commit comes first, in id order"
    );
}
