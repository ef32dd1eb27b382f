//! The storage conformance suite: written once against the `Store` trait, run against every
//! backend, each test on a database of its own.

use std::collections::BTreeMap;

use maestro::store::{
    AlertChange, AlertContent, AlertOwner, ClaimRequest, DynStore, NewAlert, PartnerImport,
    RateLimit, Rendering, SigningKeyRecord, Subscription, TemplateSource,
};
use time::{OffsetDateTime, macros::datetime};

use crate::helpers::{Backend, TestDatabase, payload_with_metadata};

mod alerts;
mod app_center;
mod company_events;
mod deliveries;
mod delivery_claims;
mod downstream;
mod ext_refs;
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
