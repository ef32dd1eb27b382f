//! Rotation: the server's signing keys (added, their recorded lifetimes, retired) and the
//! partners' postback secrets (the previous one kept for a grace period).

use maestro::store::{DynStore, RetireOutcome, SigningKeyRecord};
use time::{Duration, OffsetDateTime, macros::datetime};

use super::{UNCAPPED, claim, deliveries::deliveries_owed, import, open};
use crate::helpers::Backend;

crate::on_both_backends!(
    added_keys_are_listed_oldest_first_in_the_clear,
    a_recorded_lifetime_only_grows_and_stops_at_retirement,
    retiring_is_refused_for_the_signing_key_and_while_tokens_may_be_live,
    a_rotated_postback_secret_keeps_the_previous_one_for_its_grace_period,
);

const T0: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

fn key(kid: &str, created_at: OffsetDateTime) -> SigningKeyRecord {
    SigningKeyRecord::new(kid, "RS256", format!("pem of {kid}"), created_at)
}

/// k1, then k2 a day later (which signs).
async fn two_keys(store: &DynStore) {
    assert!(store.add_first_signing_key(&key("k1", T0)).await.unwrap());
    store
        .add_signing_key(&key("k2", T0 + Duration::days(1)))
        .await
        .unwrap();
}

async fn stored(store: &DynStore, kid: &str) -> SigningKeyRecord {
    store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kid == kid)
        .unwrap()
}

async fn added_keys_are_listed_oldest_first_in_the_clear(backend: Backend) {
    let (store, _db) = open(backend).await;
    two_keys(&store).await;
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys, [key("k1", T0), key("k2", T0 + Duration::days(1))]);
}

async fn a_recorded_lifetime_only_grows_and_stops_at_retirement(backend: Backend) {
    let (store, _db) = open(backend).await;
    two_keys(&store).await;
    let later = T0 + Duration::hours(5);
    assert!(store.record_signed_until("k1", later).await.unwrap());
    assert!(store.record_signed_until("k1", T0).await.unwrap());
    assert_eq!(stored(&store, "k1").await.signed_until, Some(later));
    assert!(!store.record_signed_until("nobody", later).await.unwrap());
    store.retire_signing_key("k1", T0, T0, true).await.unwrap();
    assert!(
        !store
            .record_signed_until("k1", later + Duration::hours(1))
            .await
            .unwrap(),
        "a retired key signs nothing more"
    );
    assert_eq!(stored(&store, "k1").await.signed_until, Some(later));
}

async fn retiring_is_refused_for_the_signing_key_and_while_tokens_may_be_live(backend: Backend) {
    let (store, _db) = open(backend).await;
    two_keys(&store).await;
    let live_until = T0 + Duration::hours(2);
    store.record_signed_until("k1", live_until).await.unwrap();
    let now = T0 + Duration::hours(1);
    let retire = |kid: &'static str, expired_before: OffsetDateTime, force: bool| {
        let store = store.clone();
        async move {
            store
                .retire_signing_key(kid, now, expired_before, force)
                .await
                .unwrap()
        }
    };
    assert_eq!(retire("k2", now, true).await, RetireOutcome::Signing);
    assert_eq!(
        retire("k1", now, false).await,
        RetireOutcome::MayBeLive { until: live_until }
    );
    assert_eq!(
        retire("nobody", now, false).await,
        RetireOutcome::UnknownKey
    );
    // Once the tokens have expired it goes without force.
    assert_eq!(
        retire("k1", live_until, false).await,
        RetireOutcome::Retired
    );
    assert_eq!(
        retire("k1", now, false).await,
        RetireOutcome::AlreadyRetired
    );
    assert_eq!(stored(&store, "k1").await.retired_at, Some(now));
    // k2 signs, whatever force says, until a newer key comes; a key that signed nothing goes.
    assert_eq!(retire("k2", now, true).await, RetireOutcome::Signing);
    store
        .add_signing_key(&key("k3", T0 + Duration::days(2)))
        .await
        .unwrap();
    assert_eq!(retire("k2", now, false).await, RetireOutcome::Retired);
    let states: Vec<(String, bool)> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.retired_at.is_some()))
        .collect();
    assert_eq!(
        states,
        [
            ("k1".to_owned(), true),
            ("k2".to_owned(), true),
            ("k3".to_owned(), false)
        ]
    );
}

async fn a_rotated_postback_secret_keeps_the_previous_one_for_its_grace_period(backend: Backend) {
    let (store, _db) = open(backend).await;
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    deliveries_owed(&store, 2, t0).await;
    let grace_end = t0 + Duration::hours(1);
    assert!(
        store
            .rotate_postback_secret("p", "whsec_new", grace_end)
            .await
            .unwrap()
    );
    assert!(
        !store
            .rotate_postback_secret("nobody", "whsec_new", grace_end)
            .await
            .unwrap()
    );
    let (partner, _) = store.partner_with_templates("p").await.unwrap().unwrap();
    assert_eq!(partner.postback_secret, "whsec_new");
    assert_eq!(
        partner.previous_postback_secret.as_deref(),
        Some("whsec_generated")
    );
    assert_eq!(partner.previous_secret_until, Some(grace_end));
    assert_eq!(store.partners().await.unwrap(), [partner]);

    let lease = Duration::seconds(60);
    let during = store
        .claim_deliveries("a", claim(t0, t0 + lease, 1, UNCAPPED))
        .await
        .unwrap();
    assert_eq!(during[0].postback_secret, "whsec_new");
    assert_eq!(
        during[0].previous_postback_secret.as_deref(),
        Some("whsec_generated")
    );
    let after = store
        .claim_deliveries("a", claim(grace_end, grace_end + lease, 1, UNCAPPED))
        .await
        .unwrap();
    assert_eq!(after[0].postback_secret, "whsec_new");
    assert_eq!(after[0].previous_postback_secret, None, "the grace is over");

    // An import that gives a secret sets it (the previous one keeps its grace period).
    store
        .import_partner(&import("p", "{}", Some("whsec_given")))
        .await
        .unwrap();
    let (partner, _) = store.partner_with_templates("p").await.unwrap().unwrap();
    assert_eq!(partner.postback_secret, "whsec_given");
}
