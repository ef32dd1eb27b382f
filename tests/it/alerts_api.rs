//! The Maestro v4 alerts API as a partner drives it (`alert_validation.rs`: what it refuses).

use maestro::store::{AlertOwner, EVENT_ALERT_CREATED, EVENT_ALERT_UPDATED};
use serde_json::{Value, json};

use crate::helpers::*;

pub(crate) async fn created_id(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "received", "{body}");
    assert_eq!(body["message"], "Alert created successfully");
    body["alertId"].as_str().unwrap().to_owned()
}

pub(crate) fn owner() -> AlertOwner {
    AlertOwner {
        partner_id: GROUNDSPAN.into(),
        company_id: COMPANY.into(),
    }
}

async fn the_seed_post_example_is_received_and_stored(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let body = post_seed();
    let id = created_id(t.post_alert(&t.groundspan_token(), &body).await).await;

    let stored = t.app.store.alert(&owner(), &id).await.unwrap().unwrap();
    assert_eq!(stored.content.ext_ref, body["extRef"].as_str().unwrap());
    assert_eq!(
        stored.content.user_id,
        "b7d12989-0489-471a-81cd-175f8b78afa5"
    );
    assert_eq!(stored.content.template_version, 1);
    assert_eq!(stored.revision, 1);
    let payload: Value = serde_json::from_str(&stored.content.payload).unwrap();
    assert_eq!(payload, body);
}

async fn both_seed_payloads_validate_against_the_groundspan_template(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    for name in ["groundspan_post.json", "groundspan_put.json"] {
        created_id(t.post_alert(&t.groundspan_token(), &seed(name)).await).await;
    }
}

async fn the_seed_put_example_updates_by_ext_ref_and_by_id_keeping_every_revision(
    backend: Backend,
) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    let post = post_seed();
    let id = created_id(t.post_alert(&token, &post).await).await;

    let mut put = seed("groundspan_put.json");
    put["extRef"] = post["extRef"].clone();
    let response = t.put_alert(&token, None, &put).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"alertId": id, "status": "updated", "message": "Alert updated successfully"})
    );

    let mut again = put.clone();
    again["metadata"]["packages"][0]["variants"][0]["price"]["amount"] = json!(399.0);
    let response = t.put_alert(&token, Some(&id), &again).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["alertId"], id.as_str());
    assert_eq!(body["status"], "updated");

    let revisions = t.app.store.alert_revisions(&id).await.unwrap();
    let prices: Vec<_> = revisions
        .iter()
        .map(|r| {
            let payload: Value = serde_json::from_str(&r.payload).unwrap();
            payload["metadata"]["packages"][0]["variants"][0]["price"]["amount"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(prices, [450.0, 425.0, 399.0]);
    assert_eq!(
        revisions.iter().map(|r| r.revision).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let stored = t.app.store.alert(&owner(), &id).await.unwrap().unwrap();
    assert_eq!(stored.revision, 3);

    let events: Vec<_> = t
        .app
        .store
        .outbox_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.alert_id == id)
        .map(|e| (e.event_type, e.revision))
        .collect();
    assert_eq!(
        events,
        [
            (EVENT_ALERT_CREATED.to_owned(), 1),
            (EVENT_ALERT_UPDATED.to_owned(), 2),
            (EVENT_ALERT_UPDATED.to_owned(), 3)
        ]
    );
}

async fn an_identical_put_is_idempotent(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    let post = post_seed();
    let id = created_id(t.post_alert(&token, &post).await).await;
    for _ in 0..2 {
        let response = t.put_alert(&token, Some(&id), &post).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(t.app.store.alert_revisions(&id).await.unwrap().len(), 1);
}

async fn an_identical_repeat_of_a_post_returns_the_same_alert(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    let body = post_seed();
    let first = created_id(t.post_alert(&token, &body).await).await;
    // The same JSON with its keys in another order is the same body.
    let reordered: Value = serde_json::from_str(&{
        let mut pairs: Vec<_> = body.as_object().unwrap().iter().collect();
        pairs.reverse();
        let inner: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{:?}:{}", k, v))
            .collect();
        format!("{{{}}}", inner.join(","))
    })
    .unwrap();
    let response = t.post_alert(&token, &reordered).await;
    assert_eq!(response.status(), 200);
    let second: Value = response.json().await.unwrap();
    assert_eq!(second["alertId"], first.as_str());
    assert_eq!(second["status"], "received");
    let events = t.app.store.outbox_after(0, 100).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.alert_id == first).count(), 1);
}

async fn a_different_body_with_a_used_ext_ref_is_a_conflict_naming_the_alert(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    let body = post_seed();
    let id = created_id(t.post_alert(&token, &body).await).await;
    let mut changed = body.clone();
    changed["msgType"] = json!("changed");
    let error = expect_error(t.post_alert(&token, &changed).await, 409, "ALERT_EXISTS").await;
    assert_eq!(error["errors"][0]["details"]["alertId"], id.as_str());
    assert_eq!(error["errors"][0]["details"]["field"], "/extRef");
}

async fn the_same_ext_ref_in_another_company_is_another_alert(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let body = post_seed();
    let first = created_id(t.post_alert(&t.groundspan_token(), &body).await).await;
    let mut other = body.clone();
    other["companyId"] = json!(OTHER_COMPANY);
    let token = t.company_token(OTHER_COMPANY, GROUNDSPAN, &[WRITE]);
    let second = created_id(t.post_alert(&token, &other).await).await;
    assert_ne!(first, second);
}

async fn ext_ref_cannot_be_changed_by_put(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    let id = created_id(t.post_alert(&token, &post_seed()).await).await;
    let other = post_seed(); // a fresh extRef
    let error = expect_error(
        t.put_alert(&token, Some(&id), &other).await,
        400,
        "EXTREF_IMMUTABLE",
    )
    .await;
    assert_eq!(error["errors"][0]["details"]["field"], "/extRef");
    assert_eq!(t.app.store.alert_revisions(&id).await.unwrap().len(), 1);
}

async fn updating_an_unknown_alert_is_404_in_both_forms(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let token = t.groundspan_token();
    expect_error(
        t.put_alert(&token, None, &post_seed()).await,
        404,
        "ALERT_NOT_FOUND",
    )
    .await;
    expect_error(
        t.put_alert(&token, Some("alt_nope"), &post_seed()).await,
        404,
        "ALERT_NOT_FOUND",
    )
    .await;
}

async fn another_companys_alert_is_invisible(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let body = post_seed();
    let id = created_id(t.post_alert(&t.groundspan_token(), &body).await).await;
    let intruder = t.company_token(OTHER_COMPANY, GROUNDSPAN, &[WRITE]);
    let mut theirs = body.clone();
    theirs["companyId"] = json!(OTHER_COMPANY);
    expect_error(
        t.put_alert(&intruder, Some(&id), &theirs).await,
        404,
        "ALERT_NOT_FOUND",
    )
    .await;
    expect_error(
        t.put_alert(&intruder, None, &theirs).await,
        404,
        "ALERT_NOT_FOUND",
    )
    .await;
    assert_eq!(t.app.store.alert_revisions(&id).await.unwrap().len(), 1);
}

async fn another_partners_alert_is_invisible(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.import_partner("otherpartner", "").await;
    let body = post_seed();
    let id = created_id(t.post_alert(&t.groundspan_token(), &body).await).await;
    let intruder = t.company_token(COMPANY, "otherpartner", &[WRITE]);
    expect_error(
        t.put_alert(&intruder, Some(&id), &body).await,
        404,
        "ALERT_NOT_FOUND",
    )
    .await;
    expect_error(
        t.put_alert(&intruder, None, &body).await,
        404,
        "ALERT_NOT_FOUND",
    )
    .await;
    // The other partner may use the same extRef for an alert of its own.
    let response = t.post_alert(&intruder, &body).await;
    assert_ne!(created_id(response).await, id);
}

crate::on_both_backends!(
    the_seed_post_example_is_received_and_stored,
    both_seed_payloads_validate_against_the_groundspan_template,
    the_seed_put_example_updates_by_ext_ref_and_by_id_keeping_every_revision,
    an_identical_put_is_idempotent,
    an_identical_repeat_of_a_post_returns_the_same_alert,
    a_different_body_with_a_used_ext_ref_is_a_conflict_naming_the_alert,
    the_same_ext_ref_in_another_company_is_another_alert,
    ext_ref_cannot_be_changed_by_put,
    updating_an_unknown_alert_is_404_in_both_forms,
    another_companys_alert_is_invisible,
    another_partners_alert_is_invisible,
);
