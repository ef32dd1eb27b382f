//! The inbox's storage beyond a page and a mark (`InboxStore`): a user's events for a resumed
//! stream, snooze and its end, read-all, exact unread counts, sessions and single-use links.

use maestro::store::{
    AlertSelector, AlertTarget, DynStore, EVENT_ALERT_CREATED, EVENT_ALERT_READ,
    EVENT_ALERT_SNOOZED, EVENT_ALERT_UNSNOOZED, InboxFilter, InboxMark, InboxOwner, InboxQuery,
    InboxSession, SnoozeOutcome,
};
use time::{Duration, OffsetDateTime, macros::datetime};

use super::{change, import, new_alert, open, owner as alert_owner};
use crate::helpers::Backend;

crate::on_both_backends!(
    a_users_events_come_after_a_position_in_order_and_no_one_elses,
    a_snooze_hides_an_alert_until_it_ends_and_it_comes_back_unread,
    a_snooze_past_the_expiry_is_refused_and_writes_nothing,
    read_all_marks_the_inbox_read_with_one_event_each,
    the_unread_count_is_exact_through_every_change,
    sessions_end_for_good_and_links_work_once,
);

/// Before the test alerts' expiry (2030-02-01).
const NOW: OffsetDateTime = datetime!(2030-01-15 12:00 UTC);

fn user(company: &str) -> InboxOwner {
    InboxOwner {
        company_id: company.into(),
        user_id: "user-1".into(),
    }
}

async fn ids(
    store: &DynStore,
    owner: &InboxOwner,
    filter: InboxFilter,
    now: OffsetDateTime,
) -> Vec<String> {
    let page = store
        .inbox_page(&InboxQuery {
            owner: owner.clone(),
            filter,
            before: None,
            limit: 100,
            now,
        })
        .await
        .unwrap();
    page.items.into_iter().map(|item| item.alert_id).collect()
}

async fn unread(store: &DynStore, owner: &InboxOwner, now: OffsetDateTime) -> i64 {
    store.inbox_unread_count(owner, now).await.unwrap()
}

async fn a_users_events_come_after_a_position_in_order_and_no_one_elses(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .create_alert(&new_alert("a1", "c1", "r1", "one"))
        .await
        .unwrap();
    store
        .create_alert(&new_alert("a2", "c2", "r2", "two"))
        .await
        .unwrap();
    store
        .create_alert(&new_alert("a3", "c1", "r3", "three"))
        .await
        .unwrap();
    store
        .mark_inbox(&user("c1"), "a1", InboxMark::Read, NOW)
        .await
        .unwrap();

    let all = store.inbox_events_after(&user("c1"), 0, 100).await.unwrap();
    let seen: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e.event_type.as_str(), e.alert_id.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (EVENT_ALERT_CREATED, "a1"),
            (EVENT_ALERT_CREATED, "a3"),
            (EVENT_ALERT_READ, "a1")
        ]
    );
    assert!(all.windows(2).all(|pair| pair[0].id < pair[1].id));
    let after_first = store
        .inbox_events_after(&user("c1"), all[0].id, 1)
        .await
        .unwrap();
    assert_eq!(after_first.len(), 1, "the limit holds");
    assert_eq!(after_first[0].alert_id, "a3");
    let head = store.outbox_head().await.unwrap();
    assert!(
        store
            .inbox_events_after(&user("c1"), head, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_snooze_hides_an_alert_until_it_ends_and_it_comes_back_unread(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .import_partner(&import("p", "{}", None))
        .await
        .unwrap();
    store
        .create_alert(&new_alert("a1", "c1", "r1", "one"))
        .await
        .unwrap();
    store
        .create_alert(&new_alert("a2", "c1", "r2", "two"))
        .await
        .unwrap();
    let owner = user("c1");
    store
        .mark_inbox(&owner, "a1", InboxMark::Read, NOW)
        .await
        .unwrap();
    let until = NOW + Duration::hours(2);

    assert_eq!(
        store.snooze_inbox(&owner, "a1", until, NOW).await.unwrap(),
        SnoozeOutcome::Snoozed { changed: true }
    );
    assert_eq!(
        store.snooze_inbox(&owner, "a1", until, NOW).await.unwrap(),
        SnoozeOutcome::Snoozed { changed: false },
        "a repeat writes nothing"
    );
    assert_eq!(ids(&store, &owner, InboxFilter::All, NOW).await, ["a2"]);
    assert_eq!(ids(&store, &owner, InboxFilter::Snoozed, NOW).await, ["a1"]);
    assert_eq!(
        unread(&store, &owner, NOW).await,
        1,
        "a snoozed alert is not counted"
    );
    let item = store.inbox_item(&owner, "a1", NOW).await.unwrap().unwrap();
    assert_eq!(item.snoozed_until, Some(until));
    assert!(!item.read, "it comes back unread");
    assert_eq!(item.partner_name, "Partner p");
    assert_eq!(item.text, "one");
    assert_eq!(
        store
            .snooze_inbox(&user("c2"), "a1", until, NOW)
            .await
            .unwrap(),
        SnoozeOutcome::NotFound
    );

    // At its end it is back, by the clock, before the sweeper has run.
    assert_eq!(
        ids(&store, &owner, InboxFilter::All, until).await,
        ["a2", "a1"]
    );
    assert!(
        ids(&store, &owner, InboxFilter::Snoozed, until)
            .await
            .is_empty()
    );
    assert_eq!(unread(&store, &owner, until).await, 2);
    let item = store
        .inbox_item(&owner, "a1", until)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.snoozed_until, None);

    let head = store.outbox_head().await.unwrap();
    assert_eq!(
        store
            .wake_snoozed(until - Duration::SECOND, 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.wake_snoozed(until, 10).await.unwrap(), 1);
    assert_eq!(store.wake_snoozed(until, 10).await.unwrap(), 0, "once");
    let events = store.outbox_after(head, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, EVENT_ALERT_UNSNOOZED);
    assert_eq!(events[0].occurred_at, until, "dated when the snooze ended");
    let snoozed: Vec<String> = store
        .outbox_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == EVENT_ALERT_SNOOZED)
        .map(|e| e.alert_id)
        .collect();
    assert_eq!(snoozed, ["a1"]);
}

async fn a_snooze_past_the_expiry_is_refused_and_writes_nothing(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .create_alert(&new_alert("a1", "c1", "r1", "one"))
        .await
        .unwrap();
    let expires_at = datetime!(2030-02-01 00:00:00.123 UTC);
    let head = store.outbox_head().await.unwrap();
    for until in [expires_at, expires_at + Duration::days(1)] {
        assert_eq!(
            store
                .snooze_inbox(&user("c1"), "a1", until, NOW)
                .await
                .unwrap(),
            SnoozeOutcome::PastExpiry { expires_at }
        );
    }
    assert_eq!(store.outbox_head().await.unwrap(), head);
    assert_eq!(
        ids(&store, &user("c1"), InboxFilter::All, NOW).await,
        ["a1"]
    );
}

async fn read_all_marks_the_inbox_read_with_one_event_each(backend: Backend) {
    let (store, _db) = open(backend).await;
    for (id, ext_ref) in [("a1", "r1"), ("a2", "r2"), ("a3", "r3"), ("a4", "r4")] {
        store
            .create_alert(&new_alert(id, "c1", ext_ref, id))
            .await
            .unwrap();
    }
    store
        .create_alert(&new_alert("b1", "c2", "r1", "other"))
        .await
        .unwrap();
    let owner = user("c1");
    store
        .mark_inbox(&owner, "a1", InboxMark::Read, NOW)
        .await
        .unwrap();
    store
        .mark_inbox(&owner, "a2", InboxMark::Dismissed, NOW)
        .await
        .unwrap();
    store
        .snooze_inbox(&owner, "a3", NOW + Duration::hours(1), NOW)
        .await
        .unwrap();
    let head = store.outbox_head().await.unwrap();

    assert_eq!(
        store.read_all_inbox(&owner, NOW).await.unwrap(),
        1,
        "a4 only"
    );
    assert_eq!(store.read_all_inbox(&owner, NOW).await.unwrap(), 0);
    let events = store.outbox_after(head, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].event_type.as_str(), events[0].alert_id.as_str()),
        (EVENT_ALERT_READ, "a4")
    );
    assert_eq!(unread(&store, &owner, NOW).await, 0);
    assert_eq!(
        unread(&store, &user("c2"), NOW).await,
        1,
        "another inbox is untouched"
    );
    // The snoozed alert comes back unread.
    assert_eq!(unread(&store, &owner, NOW + Duration::hours(1)).await, 1);
}

async fn the_unread_count_is_exact_through_every_change(backend: Backend) {
    let (store, _db) = open(backend).await;
    let owner = user("c1");
    for n in 0..30 {
        store
            .create_alert(&new_alert(
                &format!("a{n:02}"),
                "c1",
                &format!("r{n}"),
                &format!("body {n}"),
            ))
            .await
            .unwrap();
    }
    assert_eq!(unread(&store, &owner, NOW).await, 30, "never capped");
    store
        .mark_inbox(&owner, "a00", InboxMark::Read, NOW)
        .await
        .unwrap();
    store
        .mark_inbox(&owner, "a01", InboxMark::Dismissed, NOW)
        .await
        .unwrap();
    store
        .withdraw_alert(
            &maestro::store::WithdrawTarget {
                partner_id: "p".into(),
                company_id: Some("c1".into()),
                alert_id: "a02".into(),
            },
            NOW,
        )
        .await
        .unwrap();
    store
        .snooze_inbox(&owner, "a03", NOW + Duration::hours(1), NOW)
        .await
        .unwrap();
    assert_eq!(unread(&store, &owner, NOW).await, 26);
    let page = store
        .inbox_page(&InboxQuery {
            owner: owner.clone(),
            filter: InboxFilter::Unread,
            before: None,
            limit: 5,
            now: NOW,
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 5);
    assert_eq!(page.unread_count, 26, "the count is the whole inbox's");
    // The snooze's end counts from its instant, and its clearing by the sweeper changes nothing.
    let later = NOW + Duration::hours(1);
    assert_eq!(unread(&store, &owner, later).await, 27);
    assert_eq!(store.wake_snoozed(later, 100).await.unwrap(), 1);
    assert_eq!(unread(&store, &owner, later).await, 27);
    // A partner's update makes a read alert unread again.
    let target = AlertTarget {
        owner: alert_owner("c1"),
        selector: AlertSelector::Id("a00".into()),
    };
    store
        .update_alert(&target, &change("r0", "body 0, changed"))
        .await
        .unwrap();
    assert_eq!(unread(&store, &owner, later).await, 28);
    store.read_all_inbox(&owner, later).await.unwrap();
    assert_eq!(unread(&store, &owner, later).await, 0);
    store
        .update_alert(&target, &change("r0", "body 0, again"))
        .await
        .unwrap();
    assert_eq!(unread(&store, &owner, later).await, 1);
    // Every alert expires at once (2030-02-01): none is counted from that instant, before the
    // sweeper's mark and after it, nor once purged.
    let expiry = datetime!(2030-02-01 00:00:00.123 UTC);
    assert_eq!(
        unread(&store, &owner, expiry - Duration::MILLISECOND).await,
        1
    );
    assert_eq!(unread(&store, &owner, expiry).await, 0);
    assert_eq!(store.expire_alerts(expiry, 100).await.unwrap(), 30);
    assert_eq!(unread(&store, &owner, expiry).await, 0);
    assert_eq!(store.purge_expired(expiry, 100).await.unwrap(), 30);
    assert_eq!(unread(&store, &owner, expiry).await, 0);
    assert_eq!(
        unread(&store, &owner, NOW).await,
        0,
        "nothing is left to count"
    );
}

async fn sessions_end_for_good_and_links_work_once(backend: Backend) {
    let (store, _db) = open(backend).await;
    let session = InboxSession {
        digest: "d".repeat(64),
        owner: user("c1"),
        expires_at: NOW + Duration::hours(8),
    };
    store.create_inbox_session(&session, NOW).await.unwrap();
    assert_eq!(
        store.inbox_session(&session.digest, NOW).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(store.inbox_session("unknown", NOW).await.unwrap(), None);
    assert_eq!(
        store
            .inbox_session(&session.digest, session.expires_at)
            .await
            .unwrap(),
        None,
        "over at its expiry"
    );
    assert!(store.end_inbox_session(&session.digest, NOW).await.unwrap());
    assert!(!store.end_inbox_session(&session.digest, NOW).await.unwrap());
    assert_eq!(
        store.inbox_session(&session.digest, NOW).await.unwrap(),
        None
    );

    let lapses = NOW + Duration::minutes(5);
    assert!(store.use_sign_in_link("jti-1", lapses).await.unwrap());
    assert!(
        !store.use_sign_in_link("jti-1", lapses).await.unwrap(),
        "once"
    );
    assert!(store.use_sign_in_link("jti-2", lapses).await.unwrap());
    assert_eq!(store.purge_inbox_sessions(NOW).await.unwrap(), 0);
    assert_eq!(
        store
            .purge_inbox_sessions(session.expires_at)
            .await
            .unwrap(),
        3
    );
}
