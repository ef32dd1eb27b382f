//! The storage conformance suite: written once against the `Store` trait, run against every
//! backend, each test on a database of its own.

use std::collections::BTreeMap;

use maestro::config::DatabaseArgs;

use maestro::store::{
    AlertChange, AlertContent, AlertOwner, AlertSelector, AlertTarget, CreateOutcome, DynStore,
    EVENT_ALERT_CREATED, EVENT_ALERT_UPDATED, NewAlert, PartnerImport, RateLimit, Rendering,
    SigningKeyRecord, Subscription, TemplateSource, UpdateOutcome,
};
use time::{OffsetDateTime, macros::datetime};

use crate::helpers::{Backend, TestDatabase};

/// A fresh store on a database of its own; the database lives as long as the guard.
async fn open(backend: Backend) -> (DynStore, TestDatabase) {
    let db = TestDatabase::new(backend).await;
    let store = maestro::store::connect(&DatabaseArgs {
        url: db.url.clone(),
        ..DatabaseArgs::default()
    })
    .await
    .unwrap();
    (store, db)
}

crate::on_both_backends!(
    signing_keys_round_trip,
    importing_a_partner_versions_changed_templates_only,
    an_imported_secret_is_kept_unless_a_new_one_is_given,
    creating_an_alert_writes_revision_and_event,
    an_ext_ref_is_unique_per_partner_and_company,
    updates_select_by_id_or_ext_ref_within_the_owner,
    an_update_never_changes_the_ext_ref,
    an_identical_update_writes_nothing,
    the_outbox_pages_in_order,
    concurrent_creates_of_one_ext_ref_yield_one_alert,
    subscriptions_are_idempotent_both_ways,
);

fn import(id: &str, schema: &str, secret: Option<&str>) -> PartnerImport {
    PartnerImport {
        id: id.into(),
        name: format!("Partner {id}"),
        allowed_url_domains: vec!["example.com".into()],
        postback_url: Some("https://example.com/hook".into()),
        postback_secret: secret.map(str::to_owned),
        generated_secret: "whsec_generated".into(),
        rate_limit: Some(RateLimit {
            per_second: 5,
            burst: 10,
        }),
        templates: vec![TemplateSource {
            template_id: "T".into(),
            schema_json: schema.into(),
            sources: BTreeMap::from([("title.jinja".into(), "Hi".into())]),
            content_hash: format!("hash-of-{schema}"),
        }],
    }
}

fn owner(company: &str) -> AlertOwner {
    AlertOwner {
        partner_id: "p".into(),
        company_id: company.into(),
    }
}

fn content(ext_ref: &str, body: &str) -> AlertContent {
    AlertContent {
        ext_ref: ext_ref.into(),
        user_id: "user-1".into(),
        template_id: "T".into(),
        template_version: 1,
        msg_type: String::new(),
        topic: Some("offers".into()),
        title: None,
        created_at: "2030-01-01T00:00:00Z".into(),
        expires_at: datetime!(2030-02-01 00:00:00.123 UTC),
        body_hash: format!("hash-{body}"),
        payload: format!("{{\"body\":\"{body}\"}}"),
        rendering: Rendering {
            title: format!("Title {body}"),
            html: format!("<p>{body}</p>"),
            text: body.into(),
        },
    }
}

fn new_alert(id: &str, company: &str, ext_ref: &str, body: &str) -> NewAlert {
    NewAlert {
        id: id.into(),
        owner: owner(company),
        content: content(ext_ref, body),
        received_at: OffsetDateTime::now_utc(),
    }
}

fn change(ext_ref: &str, body: &str) -> AlertChange {
    AlertChange {
        content: content(ext_ref, body),
        changed_at: OffsetDateTime::now_utc(),
    }
}

async fn signing_keys_round_trip(backend: Backend) {
    let (store, _db) = open(backend).await;
    assert!(store.signing_keys().await.unwrap().is_empty());
    let key = SigningKeyRecord {
        kid: "k1".into(),
        algorithm: "RS256".into(),
        private_pem: "-----BEGIN PRIVATE KEY-----".into(),
        created_at: datetime!(2030-01-01 00:00 UTC),
    };
    assert!(store.add_first_signing_key(&key).await.unwrap());
    let second = SigningKeyRecord {
        kid: "k2".into(),
        ..key.clone()
    };
    assert!(
        !store.add_first_signing_key(&second).await.unwrap(),
        "only a first key is stored"
    );
    assert_eq!(
        store.signing_keys().await.unwrap(),
        std::slice::from_ref(&key)
    );
}

async fn importing_a_partner_versions_changed_templates_only(backend: Backend) {
    let (store, _db) = open(backend).await;
    assert_eq!(store.partner_count().await.unwrap(), 0);
    let first = store
        .import_partner(&import("p", "{}", None))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.templates, [("T".to_owned(), 1, true)]);
    let same = store
        .import_partner(&import("p", "{}", None))
        .await
        .unwrap();
    assert!(!same.created);
    assert_eq!(same.templates, [("T".to_owned(), 1, false)]);
    let changed = store
        .import_partner(&import("p", "{\"type\":\"object\"}", None))
        .await
        .unwrap();
    assert_eq!(changed.templates, [("T".to_owned(), 2, true)]);

    let (partner, templates) = store.partner_with_templates("p").await.unwrap().unwrap();
    assert_eq!(partner.name, "Partner p");
    assert_eq!(partner.allowed_url_domains, ["example.com"]);
    assert_eq!(
        partner.rate_limit,
        Some(RateLimit {
            per_second: 5,
            burst: 10
        })
    );
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0].version, 2);
    assert_eq!(templates[0].schema_json, "{\"type\":\"object\"}");
    assert_eq!(templates[0].sources["title.jinja"], "Hi");
    assert!(
        store
            .partner_with_templates("nobody")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.partner_count().await.unwrap(), 1);
    assert_eq!(store.partners().await.unwrap().len(), 1);
}

async fn an_imported_secret_is_kept_unless_a_new_one_is_given(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .import_partner(&import("p", "{}", None))
        .await
        .unwrap();
    let mut again = import("p", "{}", None);
    again.generated_secret = "whsec_other".into();
    store.import_partner(&again).await.unwrap();
    let secret = |s: &DynStore| {
        let s = s.clone();
        async move {
            s.partner_with_templates("p")
                .await
                .unwrap()
                .unwrap()
                .0
                .postback_secret
        }
    };
    assert_eq!(secret(&store).await, "whsec_generated");
    store
        .import_partner(&import("p", "{}", Some("whsec_given")))
        .await
        .unwrap();
    assert_eq!(secret(&store).await, "whsec_given");
}

async fn creating_an_alert_writes_revision_and_event(backend: Backend) {
    let (store, _db) = open(backend).await;
    let alert = new_alert("a1", "c1", "r1", "one");
    assert_eq!(
        store.create_alert(&alert).await.unwrap(),
        CreateOutcome::Created
    );
    let stored = store.alert(&owner("c1"), "a1").await.unwrap().unwrap();
    assert_eq!(
        stored.content, alert.content,
        "every field round-trips, expiry to the millisecond"
    );
    assert_eq!(stored.revision, 1);
    assert!(
        store.alert(&owner("c2"), "a1").await.unwrap().is_none(),
        "invisible to another company"
    );
    let revisions = store.alert_revisions("a1").await.unwrap();
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].payload, alert.content.payload);
    assert_eq!(revisions[0].rendering, alert.content.rendering);
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

async fn subscriptions_are_idempotent_both_ways(backend: Backend) {
    let (store, _db) = open(backend).await;
    let itinerary = Subscription {
        partner_id: "p".into(),
        company_id: "c1".into(),
        object_type: "itinerary".into(),
    };
    let fop = Subscription {
        object_type: "fop".into(),
        ..itinerary.clone()
    };
    assert!(store.subscribe(&itinerary).await.unwrap());
    assert!(
        !store.subscribe(&itinerary).await.unwrap(),
        "subscribing twice keeps one"
    );
    assert!(store.subscribe(&fop).await.unwrap());
    assert_eq!(
        store.subscriptions("c1").await.unwrap(),
        [fop.clone(), itinerary.clone()]
    );
    assert!(store.subscriptions("c2").await.unwrap().is_empty());
    assert!(store.unsubscribe(&itinerary).await.unwrap());
    assert!(
        !store.unsubscribe(&itinerary).await.unwrap(),
        "nothing left to remove"
    );
    assert_eq!(store.subscriptions("c1").await.unwrap(), [fop]);
}
