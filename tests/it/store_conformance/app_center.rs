//! The App Center's storage on both backends: clients registered by imports, secrets changed
//! with a grace period, connections, single-use request tokens, refresh-token rotation with
//! reuse detection, and the revocations a disconnection leaves.

use maestro::store::{
    ClientRegistration, NewRefreshToken, NewRequestToken, RefreshOutcome, SecretChange,
};
use time::{Duration, OffsetDateTime, macros::datetime};

use super::{import, open};
use crate::helpers::Backend;

crate::on_both_backends!(
    an_import_registers_the_partner_as_a_client_and_keeps_its_secret,
    internal_clients_are_created_once,
    a_request_token_is_redeemed_once_while_the_pair_is_connected,
    refresh_tokens_rotate_once_and_a_replay_revokes_the_chain,
    a_disconnection_revokes_the_pair_and_survives_a_reconnection,
);

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

fn refresh(hash: &str, chain: &str, company: &str) -> NewRefreshToken {
    NewRefreshToken {
        token_hash: hash.into(),
        chain_id: chain.into(),
        client_id: "p1".into(),
        company_id: company.into(),
        scopes: vec!["maestro.alerts.writeonly".into()],
        issued_at: NOW,
        expires_at: NOW + Duration::days(180),
    }
}

fn request(hash: &str, company: &str) -> NewRequestToken {
    NewRequestToken {
        token_hash: hash.into(),
        partner_id: "p1".into(),
        company_id: company.into(),
        user_id: "admin-1".into(),
        expires_at: NOW + Duration::hours(24),
    }
}

async fn an_import_registers_the_partner_as_a_client_and_keeps_its_secret(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .import_partner(&import("p1", "{}", None))
        .await
        .unwrap();
    let client = store.client("p1").await.unwrap().unwrap();
    assert_eq!(client.partner_id.as_deref(), Some("p1"));
    assert_eq!(client.scopes, ["maestro.alerts.writeonly"]);
    assert_eq!(client.redirect_uris, ["https://example.com/connect"]);
    assert_eq!(client.secret_hash, None);

    let change = SecretChange {
        client_id: "p1".into(),
        secret_hash: "hash-1".into(),
        previous_valid_until: None,
        revoke_tokens_before: None,
    };
    assert!(store.change_client_secret(&change, NOW).await.unwrap());
    let rotation = SecretChange {
        secret_hash: "hash-2".into(),
        previous_valid_until: Some(NOW + Duration::hours(24)),
        ..change.clone()
    };
    assert!(store.change_client_secret(&rotation, NOW).await.unwrap());
    // A later import updates the registration and leaves the secrets alone.
    let mut again = import("p1", "{}", None);
    again.scopes = vec!["maestro.alerts.writeonly".into(), "maestro.admin".into()];
    store.import_partner(&again).await.unwrap();
    let client = store.client("p1").await.unwrap().unwrap();
    assert_eq!(client.scopes.len(), 2);
    assert_eq!(client.secret_hash.as_deref(), Some("hash-2"));
    assert_eq!(client.previous_secret_hash.as_deref(), Some("hash-1"));
    assert_eq!(
        client.previous_secret_until,
        Some(NOW + Duration::hours(24))
    );
    assert!(store.revocations().await.unwrap().is_empty());

    // Revoking at once: no previous secret, and a revocation of every company.
    let revoke = SecretChange {
        secret_hash: "hash-3".into(),
        previous_valid_until: None,
        revoke_tokens_before: Some(NOW),
        ..change
    };
    assert!(store.change_client_secret(&revoke, NOW).await.unwrap());
    let client = store.client("p1").await.unwrap().unwrap();
    assert_eq!(client.previous_secret_hash, None);
    let revocations = store.revocations().await.unwrap();
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].company_id, None);
    assert_eq!(revocations[0].revoked_before, NOW);
    let missing = SecretChange {
        client_id: "nobody".into(),
        ..revoke
    };
    assert!(!store.change_client_secret(&missing, NOW).await.unwrap());
}

async fn internal_clients_are_created_once(backend: Backend) {
    let (store, _db) = open(backend).await;
    let producer = ClientRegistration {
        id: "travel-core".into(),
        partner_id: None,
        scopes: vec!["maestro.events.publish".into()],
        redirect_uris: vec![],
    };
    assert!(store.create_client(&producer).await.unwrap());
    assert!(!store.create_client(&producer).await.unwrap());
    let client = store.client("travel-core").await.unwrap().unwrap();
    assert_eq!(client.partner_id, None);
    assert_eq!(client.scopes, ["maestro.events.publish"]);
    assert!(store.client("nobody").await.unwrap().is_none());
}

async fn a_request_token_is_redeemed_once_while_the_pair_is_connected(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .import_partner(&import("p1", "{}", None))
        .await
        .unwrap();
    store.connect(&request("rq-1", "c1"), NOW).await.unwrap();
    let connections = store.connections("c1").await.unwrap();
    assert_eq!(connections.len(), 1);
    assert_eq!(
        (
            connections[0].connected_by.as_str(),
            connections[0].connected_at
        ),
        ("admin-1", NOW)
    );
    assert!(store.connections("c2").await.unwrap().is_empty());

    let later = NOW + Duration::minutes(5);
    // Another company's or an expired redemption fails and uses nothing.
    let other_company = refresh("rf-x", "chain-x", "c2");
    let wrong = store
        .redeem_request_token("rq-1", &other_company, later)
        .await;
    assert_eq!(wrong.unwrap(), None);
    let expired = NOW + Duration::hours(25);
    assert_eq!(
        store
            .redeem_request_token("rq-1", &refresh("rf-y", "chain-y", "c1"), expired)
            .await
            .unwrap(),
        None
    );

    assert_eq!(
        store
            .redeem_request_token("rq-1", &refresh("rf-1", "chain-1", "c1"), later)
            .await
            .unwrap()
            .as_deref(),
        Some("admin-1")
    );
    assert_eq!(
        store
            .redeem_request_token("rq-1", &refresh("rf-2", "chain-2", "c1"), later)
            .await
            .unwrap(),
        None
    );

    // A new connection voids the unredeemed token before it.
    store.connect(&request("rq-2", "c1"), later).await.unwrap();
    store.connect(&request("rq-3", "c1"), later).await.unwrap();
    assert_eq!(
        store
            .redeem_request_token("rq-2", &refresh("rf-3", "chain-3", "c1"), later)
            .await
            .unwrap(),
        None
    );
    // Connecting again keeps the connection as it was.
    let connections = store.connections("c1").await.unwrap();
    assert_eq!(connections[0].connected_at, NOW);
}

async fn refresh_tokens_rotate_once_and_a_replay_revokes_the_chain(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .import_partner(&import("p1", "{}", None))
        .await
        .unwrap();
    store.connect(&request("rq-1", "c1"), NOW).await.unwrap();
    let first = refresh("rf-1", "chain-1", "c1");
    store
        .redeem_request_token("rq-1", &first, NOW)
        .await
        .unwrap();

    let next = |hash: &str| NewRefreshToken {
        chain_id: String::new(),
        company_id: String::new(),
        scopes: vec![],
        ..refresh(hash, "", "")
    };
    let asked_more = ["maestro.admin".to_owned()];
    assert_eq!(
        store
            .rotate_refresh_token("rf-1", Some(&asked_more), &next("rf-2"), NOW)
            .await
            .unwrap(),
        RefreshOutcome::ScopeNotHeld
    );
    assert_eq!(
        store
            .rotate_refresh_token("rf-1", None, &next("rf-2"), NOW)
            .await
            .unwrap(),
        RefreshOutcome::Rotated {
            chain_id: "chain-1".into(),
            company_id: "c1".into(),
            scopes: vec!["maestro.alerts.writeonly".into()]
        }
    );
    let other_client = NewRefreshToken {
        client_id: "p2".into(),
        ..next("rf-x")
    };
    assert_eq!(
        store
            .rotate_refresh_token("rf-2", None, &other_client, NOW)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    assert_eq!(
        store
            .rotate_refresh_token("rf-1", None, &next("rf-3"), NOW)
            .await
            .unwrap(),
        RefreshOutcome::Reused {
            chain_id: "chain-1".into()
        }
    );
    // The replay revoked the chain, the live token with it.
    assert_eq!(
        store
            .rotate_refresh_token("rf-2", None, &next("rf-4"), NOW)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    // Access tokens of the chain are refused while they may live: the chain is listed.
    let listed = store.revoked_grants(NOW - time::Duration::hours(1)).await;
    assert_eq!(listed.unwrap(), ["chain-1"]);
    let later = store.revoked_grants(NOW + time::Duration::seconds(1)).await;
    assert!(later.unwrap().is_empty());
    assert_eq!(
        store
            .rotate_refresh_token("nothing", None, &next("rf-5"), NOW)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );

    // Expired grants are purged.
    let purged = store
        .purge_expired_grants(NOW + Duration::days(181))
        .await
        .unwrap();
    assert!(purged >= 2, "{purged}");
}

async fn a_disconnection_revokes_the_pair_and_survives_a_reconnection(backend: Backend) {
    let (store, _db) = open(backend).await;
    store
        .import_partner(&import("p1", "{}", None))
        .await
        .unwrap();
    store.connect(&request("rq-1", "c1"), NOW).await.unwrap();
    store
        .redeem_request_token("rq-1", &refresh("rf-1", "chain-1", "c1"), NOW)
        .await
        .unwrap();
    let gone = NOW + Duration::hours(1);
    assert!(store.disconnect("p1", "c1", gone).await.unwrap());
    assert!(
        !store.disconnect("p1", "c1", gone).await.unwrap(),
        "not connected now"
    );
    assert!(store.connections("c1").await.unwrap().is_empty());
    let next = NewRefreshToken {
        chain_id: String::new(),
        ..refresh("rf-2", "", "")
    };
    assert_eq!(
        store
            .rotate_refresh_token("rf-1", None, &next, gone)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    let revocations = store.revocations().await.unwrap();
    assert_eq!(revocations.len(), 1);
    assert_eq!(
        (
            revocations[0].company_id.as_deref(),
            revocations[0].revoked_before
        ),
        (Some("c1"), gone)
    );
    assert!(revocations[0].disconnected);

    let back = gone + Duration::hours(1);
    store.connect(&request("rq-2", "c1"), back).await.unwrap();
    assert_eq!(store.connections("c1").await.unwrap()[0].connected_at, back);
    let revocations = store.revocations().await.unwrap();
    assert!(!revocations[0].disconnected);
    assert_eq!(
        revocations[0].revoked_before, gone,
        "older tokens stay refused"
    );
}
