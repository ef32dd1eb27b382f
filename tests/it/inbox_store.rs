//! The storage conformance suite, inbox part: a user's live alerts and marks, written against
//! the `Store` trait and run on every backend (`inbox_expiry_store.rs`: expiry and the sweeper).

use maestro::store::{
    AlertChange, AlertContent, AlertOwner, AlertSelector, AlertTarget, DynStore,
    EVENT_ALERT_DISMISSED, EVENT_ALERT_READ, InboxFilter, InboxMark, InboxOwner, InboxQuery,
    NewAlert, Rendering,
};
use time::{Duration, OffsetDateTime, macros::datetime};

use crate::helpers::{Backend, TestDatabase};

crate::on_both_backends!(
    the_inbox_pages_a_users_live_alerts_newest_first,
    marks_are_idempotent_and_an_update_makes_an_alert_unread_again,
);

/// The instant the tests stand at.
pub(crate) const NOW: OffsetDateTime = datetime!(2030-01-01 12:00 UTC);

pub(crate) async fn open(backend: Backend) -> (DynStore, TestDatabase) {
    let db = TestDatabase::new(backend).await;
    let store = maestro::store::connect(&db.database_args(), maestro::store::Open::CreateIfMissing)
        .await
        .unwrap();
    (store, db)
}

pub(crate) fn user(company: &str, user: &str) -> InboxOwner {
    InboxOwner {
        company_id: company.into(),
        user_id: user.into(),
    }
}

pub(crate) fn content(
    ext_ref: &str,
    user: &str,
    expires_at: OffsetDateTime,
    body: &str,
) -> AlertContent {
    AlertContent {
        ext_ref: ext_ref.into(),
        user_id: user.into(),
        template_id: "T".into(),
        template_version: 1,
        msg_type: "offer".into(),
        topic: Some("travel".into()),
        title: None,
        created_at: "2030-01-01T00:00:00Z".into(),
        expires_at,
        body_hash: format!("hash-{body}"),
        payload: format!("{{\"body\":\"{body}\"}}"),
        rendering: Rendering {
            title: format!("Title {body}"),
            html: format!("<p>{body}</p>"),
            text: body.into(),
        }
        .into(),
        // As a store's own records leave it out: the whole payload kept in the revision.
        payload_metadata: None,
    }
}

/// Creates alert `id` for `user` of `company` expiring at `expires_at`.
pub(crate) async fn create(
    store: &DynStore,
    id: &str,
    company: &str,
    user: &str,
    expires_at: OffsetDateTime,
) {
    store
        .create_alert(&NewAlert {
            id: id.into(),
            owner: AlertOwner {
                partner_id: "p".into(),
                company_id: company.into(),
            },
            content: content(&format!("ref-{id}"), user, expires_at, id),
            received_at: NOW - Duration::hours(1),
        })
        .await
        .unwrap();
}

pub(crate) async fn update(
    store: &DynStore,
    id: &str,
    user: &str,
    expires_at: OffsetDateTime,
    body: &str,
) {
    store
        .update_alert(
            &AlertTarget {
                owner: AlertOwner {
                    partner_id: "p".into(),
                    company_id: "c1".into(),
                },
                selector: AlertSelector::Id(id.into()),
            },
            &AlertChange {
                content: content(&format!("ref-{id}"), user, expires_at, body),
                changed_at: NOW,
            },
        )
        .await
        .unwrap();
}

pub(crate) fn query(owner: &InboxOwner, before: Option<&str>, limit: i64) -> InboxQuery {
    InboxQuery {
        owner: owner.clone(),
        filter: InboxFilter::All,
        before: before.map(str::to_owned),
        limit,
        now: NOW,
    }
}

pub(crate) async fn page_ids(store: &DynStore, query: &InboxQuery) -> Vec<String> {
    let page = store.inbox_page(query).await.unwrap();
    page.items.into_iter().map(|item| item.alert_id).collect()
}

pub(crate) async fn event_types(store: &DynStore) -> Vec<(String, String)> {
    store
        .outbox_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type, e.alert_id))
        .collect()
}

async fn the_inbox_pages_a_users_live_alerts_newest_first(backend: Backend) {
    let (store, _db) = open(backend).await;
    let later = NOW + Duration::days(1);
    for id in ["alt_1", "alt_2", "alt_3", "alt_4", "alt_5"] {
        create(&store, id, "c1", "u1", later).await;
    }
    create(&store, "alt_6", "c1", "u2", later).await;
    create(&store, "alt_7", "c2", "u1", later).await;
    create(&store, "alt_8", "c1", "u1", NOW - Duration::seconds(1)).await;
    let me = user("c1", "u1");

    assert_eq!(
        page_ids(&store, &query(&me, None, 2)).await,
        ["alt_5", "alt_4"]
    );
    assert_eq!(
        page_ids(&store, &query(&me, Some("alt_4"), 2)).await,
        ["alt_3", "alt_2"]
    );
    assert_eq!(
        page_ids(&store, &query(&me, Some("alt_2"), 2)).await,
        ["alt_1"]
    );
    let page = store.inbox_page(&query(&me, None, 10)).await.unwrap();
    assert_eq!(
        page.unread_count, 5,
        "not the other user's, company's or expired"
    );
    let item = &page.items[0];
    assert_eq!(
        (item.title.as_str(), item.html.as_str(), item.text.as_str()),
        ("Title alt_5", "<p>alt_5</p>", "alt_5")
    );
    assert_eq!(
        (item.msg_type.as_str(), item.topic.as_deref(), item.read),
        ("offer", Some("travel"), false)
    );
    assert_eq!(item.expires_at, later);
    assert_eq!(item.created_at, "2030-01-01T00:00:00Z");
    assert_eq!((item.revision, item.template_version), (1, 1));

    assert_eq!(
        store.inbox_item(&me, "alt_6", NOW).await.unwrap(),
        None,
        "another user's alert"
    );
    assert_eq!(
        store
            .inbox_item(&user("c2", "u1"), "alt_7", NOW)
            .await
            .unwrap()
            .unwrap()
            .alert_id,
        "alt_7"
    );
    assert_eq!(store.outbox_head().await.unwrap(), 8);
}

async fn marks_are_idempotent_and_an_update_makes_an_alert_unread_again(backend: Backend) {
    let (store, _db) = open(backend).await;
    let later = NOW + Duration::days(1);
    create(&store, "alt_1", "c1", "u1", later).await;
    create(&store, "alt_2", "c1", "u1", later).await;
    let me = user("c1", "u1");

    assert_eq!(
        store
            .mark_inbox(&me, "alt_1", InboxMark::Read, NOW)
            .await
            .unwrap(),
        Some(true)
    );
    assert_eq!(
        store
            .mark_inbox(&me, "alt_1", InboxMark::Read, NOW)
            .await
            .unwrap(),
        Some(false)
    );
    assert_eq!(store.inbox_unread_count(&me, NOW).await.unwrap(), 1);
    assert!(
        store
            .inbox_item(&me, "alt_1", NOW)
            .await
            .unwrap()
            .unwrap()
            .read
    );
    let unread_only = InboxQuery {
        filter: InboxFilter::Unread,
        ..query(&me, None, 10)
    };
    assert_eq!(page_ids(&store, &unread_only).await, ["alt_2"]);
    assert_eq!(
        store
            .mark_inbox(&user("c1", "u2"), "alt_1", InboxMark::Read, NOW)
            .await
            .unwrap(),
        None,
        "not another user's"
    );
    assert_eq!(
        store
            .mark_inbox(&user("c2", "u1"), "alt_1", InboxMark::Dismissed, NOW)
            .await
            .unwrap(),
        None,
        "nor another company's"
    );

    update(&store, "alt_1", "u1", later, "new content").await;
    let item = store.inbox_item(&me, "alt_1", NOW).await.unwrap().unwrap();
    assert!(!item.read, "an update makes it unread again");
    assert_eq!((item.revision, item.text.as_str()), (2, "new content"));
    assert_eq!(store.inbox_unread_count(&me, NOW).await.unwrap(), 2);

    assert_eq!(
        store
            .mark_inbox(&me, "alt_2", InboxMark::Dismissed, NOW)
            .await
            .unwrap(),
        Some(true)
    );
    assert_eq!(
        store
            .mark_inbox(&me, "alt_2", InboxMark::Dismissed, NOW)
            .await
            .unwrap(),
        Some(false)
    );
    assert_eq!(store.inbox_item(&me, "alt_2", NOW).await.unwrap(), None);
    assert_eq!(page_ids(&store, &query(&me, None, 10)).await, ["alt_1"]);
    assert_eq!(store.inbox_unread_count(&me, NOW).await.unwrap(), 1);
    update(&store, "alt_2", "u1", later, "still dismissed").await;
    assert_eq!(
        store.inbox_item(&me, "alt_2", NOW).await.unwrap(),
        None,
        "dismissed for good"
    );

    let marks: Vec<_> = event_types(&store)
        .await
        .into_iter()
        .filter(|(event, _)| event == EVENT_ALERT_READ || event == EVENT_ALERT_DISMISSED)
        .collect();
    assert_eq!(
        marks,
        [
            (EVENT_ALERT_READ.to_owned(), "alt_1".to_owned()),
            (EVENT_ALERT_DISMISSED.to_owned(), "alt_2".to_owned())
        ],
        "one event per change, none for a repeat"
    );
}

/// SQLite keeps one copy of a rendering and of a metadata document that several alerts share
/// (a partner's fan-out of one offer), and drops them with the last alert that names them.
#[tokio::test]
async fn sqlite_stores_a_shared_rendering_and_metadata_once_and_drops_them_with_their_last_alert() {
    let (store, db) = open(Backend::Sqlite).await;
    let past = NOW - Duration::hours(2);
    let owner = AlertOwner {
        partner_id: "p".into(),
        company_id: "c1".into(),
    };
    let (payload, metadata) = crate::helpers::payload_with_metadata("same offer");
    for id in ["alt_1", "alt_2"] {
        store
            .create_alert(&NewAlert {
                id: id.into(),
                owner: owner.clone(),
                content: AlertContent {
                    payload: payload.clone(),
                    payload_metadata: Some(metadata.clone()),
                    ..content(&format!("ref-{id}"), "u1", past, "same offer")
                },
                received_at: NOW - Duration::hours(3),
            })
            .await
            .unwrap();
    }
    let crate::helpers::SideConnection::Sqlite(side) = db.side_connection().await else {
        unreachable!("a SQLite database")
    };
    let stored = || -> (i64, i64) {
        let count = |table: &str| -> i64 {
            side.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .unwrap()
        };
        (count("renderings"), count("metadata_documents"))
    };
    assert_eq!(stored(), (1, 1));
    let kept: String = side
        .query_row(
            "SELECT payload FROM alert_revisions WHERE alert_id = 'alt_1'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(kept.len(), payload.len() - metadata.range.len(), "{kept}");
    for id in ["alt_1", "alt_2"] {
        let alert = store.alert(&owner, id).await.unwrap().unwrap();
        assert_eq!(alert.content.rendering.html, "<p>same offer</p>");
        assert_eq!(alert.content.payload, payload, "the body read back whole");
        let revisions = store.alert_revisions(id).await.unwrap();
        assert_eq!(revisions[0].payload, payload);
    }
    assert_eq!(store.expire_alerts(NOW, 10).await.unwrap(), 2);
    assert_eq!(store.purge_expired(NOW, 1).await.unwrap(), 1);
    assert_eq!(stored(), (1, 1), "still named by the other alert");
    let alert = store.alert(&owner, "alt_2").await.unwrap().unwrap();
    assert_eq!(alert.content.payload, payload);
    assert_eq!(store.purge_expired(NOW, 1).await.unwrap(), 1);
    assert_eq!(stored(), (0, 0));
}
