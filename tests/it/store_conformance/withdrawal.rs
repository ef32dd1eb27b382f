//! A partner's withdrawal of an alert (SPEC §4.1): announced once, out of every inbox read, no
//! more updates, the extRef kept, purged on the expired alerts' schedule; and the dates of
//! template versions, which discovery shows.

use maestro::store::{
    AlertSelector, AlertTarget, CreateOutcome, DynStore, EVENT_ALERT_CREATED, EVENT_ALERT_EXPIRED,
    EVENT_ALERT_WITHDRAWN, InboxFilter, InboxMark, InboxOwner, InboxQuery, UpdateOutcome,
    WithdrawOutcome, WithdrawTarget,
};
use time::{Duration, OffsetDateTime, macros::datetime};

use super::{change, import, new_alert, open, owner};
use crate::helpers::Backend;

crate::on_both_backends!(
    a_withdrawal_is_announced_once_and_only_within_the_owner,
    a_withdrawn_alert_takes_no_update_and_keeps_its_ext_ref,
    a_withdrawn_alert_leaves_every_inbox_read_and_is_purged_after_its_expiry,
    template_versions_are_dated_when_imported,
);

/// Before the test alerts' expiry (2030-02-01).
const NOW: OffsetDateTime = datetime!(2030-01-15 12:00 UTC);

fn target(company: Option<&str>, alert_id: &str) -> WithdrawTarget {
    WithdrawTarget {
        partner_id: "p".into(),
        company_id: company.map(str::to_owned),
        alert_id: alert_id.into(),
    }
}

async fn withdraw(store: &DynStore, target: &WithdrawTarget) -> WithdrawOutcome {
    store.withdraw_alert(target, NOW).await.unwrap()
}

async fn events(store: &DynStore) -> Vec<(String, String)> {
    store
        .outbox_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type, e.alert_id))
        .collect()
}

async fn a_withdrawal_is_announced_once_and_only_within_the_owner(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .create_alert(&new_alert("a1", "c1", "r1", "one"))
        .await
        .unwrap();
    store
        .create_alert(&new_alert("a2", "c2", "r2", "two"))
        .await
        .unwrap();

    let stranger = WithdrawTarget {
        partner_id: "other".into(),
        ..target(Some("c1"), "a1")
    };
    for nobody in [
        stranger,
        target(Some("c2"), "a1"),
        target(Some("c1"), "nope"),
    ] {
        assert_eq!(
            withdraw(&store, &nobody).await,
            WithdrawOutcome::NotFound,
            "{nobody:?}"
        );
    }
    assert_eq!(
        store
            .alert(&owner("c1"), "a1")
            .await
            .unwrap()
            .unwrap()
            .withdrawn_at,
        None
    );

    assert_eq!(
        withdraw(&store, &target(Some("c1"), "a1")).await,
        WithdrawOutcome::Withdrawn
    );
    assert_eq!(
        withdraw(&store, &target(Some("c1"), "a1")).await,
        WithdrawOutcome::AlreadyWithdrawn
    );
    // Without a company, any of the partner's alerts.
    assert_eq!(
        withdraw(&store, &target(None, "a2")).await,
        WithdrawOutcome::Withdrawn
    );

    let stored = store.alert(&owner("c1"), "a1").await.unwrap().unwrap();
    assert_eq!(stored.withdrawn_at, Some(NOW));
    assert_eq!(stored.revision, 1, "a withdrawal is no revision");
    let withdrawn: Vec<_> = store
        .outbox_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == EVENT_ALERT_WITHDRAWN)
        .map(|e| {
            (
                e.alert_id,
                e.company_id,
                e.user_id,
                e.revision,
                e.occurred_at,
            )
        })
        .collect();
    assert_eq!(
        withdrawn,
        [
            ("a1".into(), "c1".into(), "user-1".into(), 1, NOW),
            ("a2".into(), "c2".into(), "user-1".into(), 1, NOW),
        ],
        "one event per withdrawal, none for the repeat"
    );
}

async fn a_withdrawn_alert_takes_no_update_and_keeps_its_ext_ref(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .create_alert(&new_alert("a1", "c1", "r1", "one"))
        .await
        .unwrap();
    withdraw(&store, &target(Some("c1"), "a1")).await;

    for selector in [
        AlertSelector::Id("a1".into()),
        AlertSelector::ExtRef("r1".into()),
    ] {
        let by = AlertTarget {
            owner: owner("c1"),
            selector,
        };
        for body in ["two", "one"] {
            assert_eq!(
                store.update_alert(&by, &change("r1", body)).await.unwrap(),
                UpdateOutcome::Withdrawn {
                    alert_id: "a1".into()
                },
                "{by:?} {body}"
            );
        }
    }
    assert_eq!(
        store
            .update_alert(
                &AlertTarget {
                    owner: owner("c1"),
                    selector: AlertSelector::Id("a1".into()),
                },
                &change("another-ref", "two"),
            )
            .await
            .unwrap(),
        UpdateOutcome::Withdrawn {
            alert_id: "a1".into()
        },
        "withdrawn outranks a changed extRef"
    );
    for (id, body, same_body) in [("b1", "one", true), ("b2", "two", false)] {
        assert_eq!(
            store
                .create_alert(&new_alert(id, "c1", "r1", body))
                .await
                .unwrap(),
            CreateOutcome::Withdrawn {
                alert_id: "a1".into(),
                same_body
            }
        );
    }
    assert_eq!(store.alert_revisions("a1").await.unwrap().len(), 1);
    assert!(store.alert(&owner("c1"), "b1").await.unwrap().is_none());
    assert_eq!(
        events(&store).await,
        [
            (EVENT_ALERT_CREATED.into(), "a1".into()),
            (EVENT_ALERT_WITHDRAWN.into(), "a1".into())
        ]
    );
}

async fn a_withdrawn_alert_leaves_every_inbox_read_and_is_purged_after_its_expiry(
    backend: Backend,
) {
    let (store, _db) = open(backend).await;
    for (id, ext_ref) in [("a1", "r1"), ("a2", "r2")] {
        store
            .create_alert(&new_alert(id, "c1", ext_ref, id))
            .await
            .unwrap();
    }
    let user = InboxOwner {
        company_id: "c1".into(),
        user_id: "user-1".into(),
    };
    withdraw(&store, &target(Some("c1"), "a1")).await;

    for filter in [InboxFilter::All, InboxFilter::Unread] {
        let page = store
            .inbox_page(&InboxQuery {
                owner: user.clone(),
                filter,
                before: None,
                limit: 10,
                now: NOW,
            })
            .await
            .unwrap();
        let ids: Vec<_> = page.items.iter().map(|i| i.alert_id.as_str()).collect();
        assert_eq!(ids, ["a2"], "{filter:?}");
        assert_eq!(page.unread_count, 1);
    }
    assert_eq!(store.inbox_unread_count(&user, NOW).await.unwrap(), 1);
    assert!(store.inbox_item(&user, "a1", NOW).await.unwrap().is_none());
    for mark in [InboxMark::Read, InboxMark::Dismissed] {
        assert_eq!(
            store.mark_inbox(&user, "a1", mark, NOW).await.unwrap(),
            None,
            "{mark:?}"
        );
    }

    // At its expiry it is marked like the other, but its last event stays alert.withdrawn.
    let expires_at = datetime!(2030-02-01 00:00:00.123 UTC);
    assert_eq!(store.expire_alerts(expires_at, 10).await.unwrap(), 2);
    let expired: Vec<_> = events(&store)
        .await
        .into_iter()
        .filter(|(event, _)| event == EVENT_ALERT_EXPIRED)
        .map(|(_, id)| id)
        .collect();
    assert_eq!(expired, ["a2"]);
    assert_eq!(store.expire_alerts(expires_at, 10).await.unwrap(), 0);

    // The purge's cutoff is `now` less the retention: both go once it reaches their expiry.
    let just_before = expires_at - Duration::milliseconds(1);
    assert_eq!(store.purge_expired(just_before, 10).await.unwrap(), 0);
    assert_eq!(store.purge_expired(expires_at, 10).await.unwrap(), 2);
    assert!(store.alert(&owner("c1"), "a1").await.unwrap().is_none());
    assert!(store.alert_revisions("a1").await.unwrap().is_empty());
}

async fn template_versions_are_dated_when_imported(backend: Backend) {
    let (store, _db) = open(backend).await;
    let dated = |store: &DynStore| {
        let store = store.clone();
        async move {
            let (_, templates) = store.partner_with_templates("p").await.unwrap().unwrap();
            (templates[0].version, templates[0].created_at)
        }
    };
    let before = OffsetDateTime::now_utc() - Duration::seconds(1);
    store
        .import_partner(&import("p", "{}", None))
        .await
        .unwrap();
    let (version, first) = dated(&store).await;
    assert_eq!(version, 1);
    assert!(
        first >= before && first <= OffsetDateTime::now_utc() + Duration::seconds(1),
        "{first}"
    );
    store
        .import_partner(&import("p", "{}", None))
        .await
        .unwrap();
    assert_eq!(
        dated(&store).await,
        (1, first),
        "an unchanged import keeps the date"
    );
    store
        .import_partner(&import("p", "{\"type\":\"object\"}", None))
        .await
        .unwrap();
    let (version, second) = dated(&store).await;
    assert_eq!(version, 2);
    assert!(second >= first);
}
