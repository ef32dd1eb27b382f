//! An extRef stays taken however the store finds it: after the store is opened again, through
//! another store on the same database, and until its alert is purged (SQLite keeps the recent
//! extRefs in the writer's memory and writes them out later, `sqlite/ext_refs.rs`).

use maestro::store::{AlertSelector, AlertTarget, CreateOutcome, UpdateOutcome};
use time::macros::datetime;

use super::{change, new_alert, open, owner};
use crate::helpers::Backend;

crate::on_both_backends!(
    an_ext_ref_stays_taken_after_the_store_is_opened_again,
    stores_sharing_a_database_find_each_others_ext_refs,
    a_purged_alerts_ext_ref_can_be_taken_again,
);

fn by_ext_ref(company: &str, ext_ref: &str) -> AlertTarget {
    AlertTarget {
        owner: owner(company),
        selector: AlertSelector::ExtRef(ext_ref.into()),
    }
}

fn existing(alert_id: &str) -> CreateOutcome {
    CreateOutcome::Existing {
        alert_id: alert_id.into(),
        same_body: true,
    }
}

async fn an_ext_ref_stays_taken_after_the_store_is_opened_again(backend: Backend) {
    let (store, db) = open(backend).await;
    for n in 0..20 {
        let alert = new_alert(&format!("a{n}"), "c1", &format!("r{n}"), "one");
        assert_eq!(
            store.create_alert(&alert).await.unwrap(),
            CreateOutcome::Created
        );
    }
    drop(store);
    let store = maestro::store::connect(&db.database_args(), maestro::store::Open::Existing)
        .await
        .unwrap();
    for n in 0..20 {
        let again = new_alert(&format!("b{n}"), "c1", &format!("r{n}"), "one");
        assert_eq!(
            store.create_alert(&again).await.unwrap(),
            existing(&format!("a{n}")),
            "r{n} is still a{n}'s"
        );
    }
    let updated = store
        .update_alert(&by_ext_ref("c1", "r7"), &change("r7", "two"))
        .await
        .unwrap();
    assert_eq!(
        updated,
        UpdateOutcome::Updated {
            alert_id: "a7".into(),
            revision: 2
        }
    );
    assert_eq!(
        store
            .create_alert(&new_alert("a20", "c1", "r20", "one"))
            .await
            .unwrap(),
        CreateOutcome::Created
    );
}

async fn stores_sharing_a_database_find_each_others_ext_refs(backend: Backend) {
    let (first, db) = open(backend).await;
    let second = maestro::store::connect(&db.database_args(), maestro::store::Open::Existing)
        .await
        .unwrap();
    // Each has written before, so each has read what it knew then.
    assert_eq!(
        first
            .create_alert(&new_alert("a0", "c1", "r0", "one"))
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(
        second
            .create_alert(&new_alert("b0", "c1", "r0", "one"))
            .await
            .unwrap(),
        existing("a0")
    );
    for n in 1..5 {
        let (mine, theirs) = if n % 2 == 0 {
            (&first, &second)
        } else {
            (&second, &first)
        };
        let id = format!("a{n}");
        let ext_ref = format!("r{n}");
        assert_eq!(
            mine.create_alert(&new_alert(&id, "c1", &ext_ref, "one"))
                .await
                .unwrap(),
            CreateOutcome::Created
        );
        assert_eq!(
            theirs
                .create_alert(&new_alert(&format!("b{n}"), "c1", &ext_ref, "one"))
                .await
                .unwrap(),
            existing(&id),
            "the other store's {ext_ref}"
        );
        assert_eq!(
            theirs
                .update_alert(&by_ext_ref("c1", &ext_ref), &change(&ext_ref, "two"))
                .await
                .unwrap(),
            UpdateOutcome::Updated {
                alert_id: id,
                revision: 2
            }
        );
    }
}

async fn a_purged_alerts_ext_ref_can_be_taken_again(backend: Backend) {
    let (store, _db) = open(backend).await;
    // The alerts of `new_alert` expire on 2030-02-01.
    let after_expiry = datetime!(2030-03-01 00:00 UTC);
    assert_eq!(
        store
            .create_alert(&new_alert("a1", "c1", "r1", "one"))
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(store.expire_alerts(after_expiry, 10).await.unwrap(), 1);
    assert_eq!(store.purge_expired(after_expiry, 10).await.unwrap(), 1);
    assert_eq!(
        store
            .update_alert(&by_ext_ref("c1", "r1"), &change("r1", "two"))
            .await
            .unwrap(),
        UpdateOutcome::NotFound,
        "gone with its alert"
    );
    assert_eq!(
        store
            .create_alert(&new_alert("a2", "c1", "r1", "two"))
            .await
            .unwrap(),
        CreateOutcome::Created,
        "a new alert may take it"
    );
    assert_eq!(
        store
            .create_alert(&new_alert("a3", "c1", "r1", "two"))
            .await
            .unwrap(),
        existing("a2")
    );
}
