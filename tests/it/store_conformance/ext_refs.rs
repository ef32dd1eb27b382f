//! An extRef stays taken however the store finds it: after the store is opened again, through
//! another store on the same database, and until its alert is purged (SQLite keeps the recent
//! extRefs in the writer's memory and writes them out later, `sqlite/ext_refs.rs`).

use maestro::store::{AlertSelector, AlertTarget, CreateOutcome, DynStore, UpdateOutcome};
use time::macros::datetime;

use super::{change, new_alert, open, owner};
use crate::helpers::Backend;

crate::on_both_backends!(
    an_ext_ref_stays_taken_after_the_store_is_opened_again,
    stores_sharing_a_database_find_each_others_ext_refs,
    a_purged_alerts_ext_ref_can_be_taken_again,
);

/// Creates alert `id` of company c1 with `ext_ref` and `body` through `store`.
async fn create(store: &DynStore, id: &str, ext_ref: &str, body: &str) -> CreateOutcome {
    store
        .create_alert(&new_alert(id, "c1", ext_ref, body))
        .await
        .unwrap()
}

/// Updates company c1's alert `ext_ref`, found by its extRef, to `body`.
async fn update(store: &DynStore, ext_ref: &str, body: &str) -> UpdateOutcome {
    let target = AlertTarget {
        owner: owner("c1"),
        selector: AlertSelector::ExtRef(ext_ref.into()),
    };
    store
        .update_alert(&target, &change(ext_ref, body))
        .await
        .unwrap()
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
        let created = create(&store, &format!("a{n}"), &format!("r{n}"), "one").await;
        assert_eq!(created, CreateOutcome::Created);
    }
    drop(store);
    let store = maestro::store::connect(&db.database_args(), maestro::store::Open::Existing)
        .await
        .unwrap();
    for n in 0..20 {
        assert_eq!(
            create(&store, &format!("b{n}"), &format!("r{n}"), "one").await,
            existing(&format!("a{n}")),
            "r{n} is still a{n}'s"
        );
    }
    let updated = update(&store, "r7", "two").await;
    assert_eq!(
        updated,
        UpdateOutcome::Updated {
            alert_id: "a7".into(),
            revision: 2
        }
    );
    assert_eq!(
        create(&store, "a20", "r20", "one").await,
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
        create(&first, "a0", "r0", "one").await,
        CreateOutcome::Created
    );
    assert_eq!(create(&second, "b0", "r0", "one").await, existing("a0"));
    for n in 1..5 {
        let (mine, theirs) = if n % 2 == 0 {
            (&first, &second)
        } else {
            (&second, &first)
        };
        let id = format!("a{n}");
        let ext_ref = format!("r{n}");
        assert_eq!(
            create(mine, &id, &ext_ref, "one").await,
            CreateOutcome::Created
        );
        assert_eq!(
            create(theirs, &format!("b{n}"), &ext_ref, "one").await,
            existing(&id),
            "the other store's {ext_ref}"
        );
        assert_eq!(
            update(theirs, &ext_ref, "two").await,
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
        create(&store, "a1", "r1", "one").await,
        CreateOutcome::Created
    );
    assert_eq!(store.expire_alerts(after_expiry, 10).await.unwrap(), 1);
    assert_eq!(store.purge_expired(after_expiry, 10).await.unwrap(), 1);
    assert_eq!(
        update(&store, "r1", "two").await,
        UpdateOutcome::NotFound,
        "gone with its alert"
    );
    assert_eq!(
        create(&store, "a2", "r1", "two").await,
        CreateOutcome::Created,
        "a new alert may take it"
    );
    assert_eq!(create(&store, "a3", "r1", "two").await, existing("a2"));
}
