//! The storage conformance suite: written once against the `Store` trait, run against every
//! backend, each test on a database of its own.

use std::collections::BTreeMap;

use maestro::store::{
    AlertChange, AlertContent, AlertOwner, AlertSelector, AlertTarget, AttemptRecord, ClaimRequest,
    CreateOutcome, DeliveryFilter, DeliveryNext, DynStore, EVENT_ALERT_CREATED,
    EVENT_ALERT_UPDATED, NewAlert, NewCompanyEvent, PartnerImport, RateLimit, Rendering,
    ReplayOutcome, SigningKeyRecord, SnapshotKey, Subscription, TemplateSource, UpdateOutcome,
};
use time::{OffsetDateTime, macros::datetime};

use crate::helpers::{Backend, TestDatabase, payload_with_metadata};

mod app_center;
mod company_events;
mod delivery_claims;
mod downstream;
mod inbox_more;
mod key_rotation;
mod withdrawal;
mod worker_lag;

/// A per-partner limit on claims that the tests of other things never reach.
const UNCAPPED: i64 = 1_000;

/// What a worker claims at `now`, leased until `lease_until`.
fn claim(
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: i64,
    per_partner_limit: i64,
) -> ClaimRequest {
    ClaimRequest {
        now,
        lease_until,
        limit,
        per_partner_limit,
    }
}

/// When the next delivery not yet due at `at` falls due, as a worker's step tells it (a step
/// that records nothing and claims nothing).
async fn next_due(store: &DynStore, at: OffsetDateTime) -> Option<OffsetDateTime> {
    store
        .finish_and_claim("nobody", &[], claim(at, at, 0, UNCAPPED))
        .await
        .unwrap()
        .next_due
}

/// A fresh store on a database of its own; the database lives as long as the guard.
async fn open(backend: Backend) -> (DynStore, TestDatabase) {
    let db = TestDatabase::new(backend).await;
    let store = maestro::store::connect(&db.database_args(), maestro::store::Open::CreateIfMissing)
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
    a_claim_is_exclusive_until_its_lease_lapses,
    a_lapsed_claim_cannot_overwrite_its_successor,
    the_next_due_delivery_is_the_first_not_yet_due,
    replays_and_snapshots,
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
        scopes: vec!["maestro.alerts.writeonly".into()],
        redirect_uris: vec!["https://example.com/connect".into()],
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

/// An alert's content as the alert service makes it: the payload's metadata located, so that a
/// backend may store it apart (SQLite keeps one copy per document).
fn content(ext_ref: &str, body: &str) -> AlertContent {
    let (payload, metadata) = payload_with_metadata(body);
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
        payload,
        rendering: Rendering {
            title: format!("Title {body}"),
            html: format!("<p>{body}</p>"),
            text: body.into(),
        }
        .into(),
        payload_metadata: Some(metadata),
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
    let key = SigningKeyRecord::new(
        "k1",
        "RS256",
        "-----BEGIN PRIVATE KEY-----".into(),
        datetime!(2030-01-01 00:00 UTC),
    );
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

/// A partner subscribed to company c1's itineraries, and `events` events recorded for it.
async fn deliveries_owed(store: &DynStore, events: usize, at: OffsetDateTime) -> Vec<String> {
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
