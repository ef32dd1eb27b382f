//! The storage conformance suite, inbox part two: an alert leaving the inbox at the instant it
//! expires, the sweeper announcing each expiry once and purging after the retention, and an
//! update reviving an expired alert. Written against the `Store` trait, run on every backend.

use maestro::store::{AlertOwner, EVENT_ALERT_EXPIRED, InboxMark, InboxQuery};
use time::{Duration, macros::datetime};

use crate::{helpers::Backend, inbox_store::*};

crate::on_both_backends!(
    an_alert_leaves_the_inbox_at_the_instant_it_expires,
    the_sweeper_announces_each_expiry_once_and_purges_after_the_retention,
    an_update_revives_an_expired_alert_until_it_expires_again,
);

async fn an_alert_leaves_the_inbox_at_the_instant_it_expires(backend: Backend) {
    let (store, _db) = open(backend).await;
    let expiry = datetime!(2030-01-01 12:00:00.250 UTC);
    create(&store, "alt_1", "c1", "u1", expiry).await;
    let me = user("c1", "u1");
    let just_before = expiry - Duration::milliseconds(1);
    let at = |now| InboxQuery {
        now,
        ..query(&me, None, 10)
    };

    assert_eq!(page_ids(&store, &at(just_before)).await, ["alt_1"]);
    assert_eq!(store.inbox_unread_count(&me, just_before).await.unwrap(), 1);
    assert!(
        page_ids(&store, &at(expiry)).await.is_empty(),
        "gone at the instant"
    );
    assert_eq!(store.inbox_unread_count(&me, expiry).await.unwrap(), 0);
    assert_eq!(store.inbox_item(&me, "alt_1", expiry).await.unwrap(), None);
    assert_eq!(
        store
            .mark_inbox(&me, "alt_1", InboxMark::Read, expiry)
            .await
            .unwrap(),
        None,
        "nor can it be marked"
    );
    assert_eq!(
        store.expire_alerts(just_before, 10).await.unwrap(),
        0,
        "the sweeper has nothing to do before"
    );
}

async fn the_sweeper_announces_each_expiry_once_and_purges_after_the_retention(backend: Backend) {
    let (store, _db) = open(backend).await;
    let first = NOW - Duration::hours(2);
    let second = NOW - Duration::hours(1);
    create(&store, "alt_1", "c1", "u1", second).await;
    create(&store, "alt_2", "c1", "u1", first).await;
    create(&store, "alt_3", "c1", "u1", NOW + Duration::hours(1)).await;

    assert_eq!(
        store.expire_alerts(NOW, 1).await.unwrap(),
        1,
        "a batch at a time"
    );
    assert_eq!(store.expire_alerts(NOW, 10).await.unwrap(), 1);
    assert_eq!(store.expire_alerts(NOW, 10).await.unwrap(), 0, "once each");
    let events = store.outbox_after(0, 100).await.unwrap();
    let expired: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == EVENT_ALERT_EXPIRED)
        .map(|e| {
            (
                e.alert_id.as_str(),
                e.occurred_at,
                e.user_id.as_str(),
                e.revision,
            )
        })
        .collect();
    assert_eq!(
        expired,
        [("alt_2", first, "u1", 1), ("alt_1", second, "u1", 1)],
        "oldest expiry first, each dated when it expired"
    );

    assert_eq!(
        store
            .purge_expired(first - Duration::seconds(1), 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.purge_expired(first, 10).await.unwrap(), 1);
    let owner = AlertOwner {
        partner_id: "p".into(),
        company_id: "c1".into(),
    };
    assert_eq!(store.alert(&owner, "alt_2").await.unwrap(), None);
    assert!(
        store.alert_revisions("alt_2").await.unwrap().is_empty(),
        "revisions go too"
    );
    assert!(
        store.alert(&owner, "alt_1").await.unwrap().is_some(),
        "still within retention"
    );

    // An alert past its expiry but not yet swept is never purged: its event comes first.
    create(&store, "alt_4", "c1", "u1", first).await;
    assert_eq!(store.purge_expired(NOW, 10).await.unwrap(), 1, "alt_1 only");
    assert!(store.alert(&owner, "alt_4").await.unwrap().is_some());
    assert!(store.alert(&owner, "alt_3").await.unwrap().is_some());
}

async fn an_update_revives_an_expired_alert_until_it_expires_again(backend: Backend) {
    let (store, _db) = open(backend).await;
    let me = user("c1", "u1");
    create(&store, "alt_1", "c1", "u1", NOW - Duration::hours(1)).await;
    assert_eq!(store.expire_alerts(NOW, 10).await.unwrap(), 1);
    update(&store, "alt_1", "u1", NOW + Duration::hours(1), "extended").await;
    assert_eq!(
        store
            .inbox_item(&me, "alt_1", NOW)
            .await
            .unwrap()
            .unwrap()
            .text,
        "extended"
    );
    assert_eq!(
        store
            .purge_expired(NOW + Duration::days(30), 10)
            .await
            .unwrap(),
        0,
        "no longer marked expired"
    );
    assert_eq!(
        store
            .expire_alerts(NOW + Duration::hours(2), 10)
            .await
            .unwrap(),
        1
    );
    let expiries = event_types(&store)
        .await
        .into_iter()
        .filter(|(event, _)| event == EVENT_ALERT_EXPIRED)
        .count();
    assert_eq!(expiries, 2);
}
