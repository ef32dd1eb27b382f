//! Several instances on one database behave as one service.

use std::sync::Arc;

use maestro::{App, Settings};
use serde_json::Value;

use crate::helpers::*;

async fn instances_starting_together_migrate_once_and_share_one_key(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let open = || {
        let mut settings = Settings::with_database("127.0.0.1:0", &db.url);
        settings.database = db.database_args();
        App::open(settings)
    };
    let (a, b) = tokio::join!(open(), open());
    let (a, b) = (a.unwrap(), b.unwrap());
    let kids = |app: &Arc<App>| {
        app.keyring
            .public_jwks()
            .keys
            .iter()
            .map(|k| k.common.key_id.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(kids(&a).len(), 1, "one signing key, generated once");
    assert_eq!(kids(&a), kids(&b));
    let (partner, templates) = a
        .store
        .partner_with_templates(GROUNDSPAN)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(partner.id, GROUNDSPAN);
    assert_eq!(
        templates[0].version, 1,
        "the bundled partner was imported once"
    );
    assert_eq!(a.store.partners().await.unwrap().len(), 1);
}

async fn an_alert_created_through_one_instance_is_updated_through_another(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = TestApp::spawn_on(a.db.clone(), |_| {}).await;
    let token = a.groundspan_token(); // signed by A, verified by B: the key is shared
    let post = post_seed();
    let response = a.post_alert(&token, &post).await;
    assert_eq!(response.status(), 200);
    let id = response.json::<Value>().await.unwrap()["alertId"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut put = seed("groundspan_put.json");
    put["extRef"] = post["extRef"].clone();
    let response = b.put_alert(&token, Some(&id), &put).await;
    assert_eq!(response.status(), 200);
    put["msgType"] = serde_json::json!("second update");
    let response = b.put_alert(&token, None, &put).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["alertId"],
        id.as_str()
    );
    assert_eq!(a.app.store.alert_revisions(&id).await.unwrap().len(), 3);
}

async fn the_same_ext_ref_posted_to_two_instances_at_once_yields_one_alert(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = TestApp::spawn_on(a.db.clone(), |_| {}).await;
    let token = a.groundspan_token();
    const ROUNDS: usize = 20;
    for _ in 0..ROUNDS {
        let body = post_seed();
        let (first, second) =
            tokio::join!(a.post_alert(&token, &body), b.post_alert(&token, &body));
        assert_eq!(
            (first.status().as_u16(), second.status().as_u16()),
            (200, 200)
        );
        let (first, second): (Value, Value) =
            (first.json().await.unwrap(), second.json().await.unwrap());
        assert_eq!(
            first["alertId"], second["alertId"],
            "one alert for one extRef"
        );
        let created = [&first, &second]
            .iter()
            .filter(|r| r["message"] == "Alert created successfully")
            .count();
        assert_eq!(created, 1, "{first} {second}");
    }
    let events = a.app.store.outbox_after(0, 1000).await.unwrap();
    assert_eq!(events.len(), ROUNDS, "one alert.created per extRef");
}

crate::on_both_backends!(
    instances_starting_together_migrate_once_and_share_one_key,
    an_alert_created_through_one_instance_is_updated_through_another,
    the_same_ext_ref_posted_to_two_instances_at_once_yields_one_alert,
);
