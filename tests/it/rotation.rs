//! Rotation, through the real CLI: the server's signing keys (`maestro keys rotate | retire`,
//! taken in by running instances at their key refresh, called here instead of waited for) and
//! partners' postback secrets (`maestro partner rotate-secret`, both signatures meanwhile).

use maestro::auth::{TokenKind, signing::TokenRequest};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::{
    delivery_helpers::{PARTNER, SECRET, event, pass, publish, spawn, subscribe},
    helpers::*,
    receiver::Receiver,
};

crate::on_both_backends!(
    a_rotated_key_signs_while_the_old_one_keeps_verifying,
    retiring_waits_for_live_tokens_unless_forced_and_then_refuses_them,
    a_second_instance_takes_in_a_rotation_and_a_retirement_at_its_refresh,
    during_the_grace_period_a_delivery_verifies_with_the_old_and_the_new_secret,
    partner_show_prints_the_secret_only_when_asked,
);

fn write_token() -> TokenRequest {
    TokenRequest {
        kind: TokenKind::Company,
        subject: COMPANY.into(),
        app_id: Some(GROUNDSPAN.into()),
        scopes: vec![WRITE.into()],
        company: None,
        roles: vec![],
        ttl_secs: 600,
    }
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Runs a CLI command that must succeed; returns its stdout.
async fn ok(t: &TestApp, args: &[&str]) -> String {
    let output = t.db.cli(args).await;
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs a CLI command that must fail; returns its stderr.
async fn refused(t: &TestApp, args: &[&str]) -> String {
    let output = t.db.cli(args).await;
    assert!(!output.status.success(), "{args:?} succeeded");
    String::from_utf8(output.stderr).unwrap()
}

async fn published_kids(t: &TestApp) -> Vec<String> {
    let jwks: Value = t.get_json("/oauth2/v0/jwks").await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn status_of(t: &TestApp, token: &str) -> u16 {
    t.post_alert(token, &post_seed()).await.status().as_u16()
}

async fn refresh(t: &TestApp) {
    t.app.keyring.refresh(&t.app.store).await.unwrap();
}

/// `maestro keys list` as (kid, state) pairs, read from its JSON; the table says the same.
async fn key_states(t: &TestApp) -> Vec<(String, String)> {
    let listed: serde_json::Value =
        serde_json::from_str(&ok(t, &["keys", "list", "--output", "json"]).await).unwrap();
    let states: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|key| {
            assert_eq!(key["algorithm"], "RS256", "{key}");
            let state = key["state"].as_str().unwrap().to_owned();
            (key["kid"].as_str().unwrap().to_owned(), state)
        })
        .collect();
    let table = ok(t, &["keys", "list"]).await;
    let rows: Vec<Vec<String>> = table
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        rows[0][..4],
        ["KID", "ALGORITHM", "CREATED", "STATE"],
        "{table}"
    );
    let shown: Vec<(String, String)> = rows[1..]
        .iter()
        .map(|row| (row[0].clone(), row[3].clone()))
        .collect();
    assert_eq!(shown, states, "{table}");
    states
}

async fn a_rotated_key_signs_while_the_old_one_keeps_verifying(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let old_token = t.groundspan_token();
    let old = kid_of(&old_token);
    let new = ok(&t, &["keys", "rotate"]).await.trim().to_owned();
    assert_ne!(new, old);
    refresh(&t).await;

    assert_eq!(published_kids(&t).await, [old.clone(), new.clone()]);
    let new_token = t.issue(write_token()).await;
    assert_eq!(kid_of(&new_token), new, "the newest key signs");
    assert_eq!(status_of(&t, &new_token).await, 200);
    assert_eq!(status_of(&t, &old_token).await, 200, "the old key verifies");
    assert_eq!(
        key_states(&t).await,
        [(old, "verifying".into()), (new, "signing".into())]
    );
}

async fn retiring_waits_for_live_tokens_unless_forced_and_then_refuses_them(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let old_token = t.groundspan_token();
    let old = kid_of(&old_token);
    let new = ok(&t, &["keys", "rotate"]).await.trim().to_owned();
    refresh(&t).await;

    let message = refused(&t, &["keys", "retire", &old]).await;
    assert!(message.contains("may still be live until"), "{message}");
    let message = refused(&t, &["keys", "retire", &new]).await;
    assert!(message.contains("rotate first"), "{message}");
    refresh(&t).await;
    assert_eq!(status_of(&t, &old_token).await, 200, "still trusted");

    ok(&t, &["keys", "retire", &old, "--force"]).await;
    refresh(&t).await;
    assert_eq!(
        status_of(&t, &old_token).await,
        401,
        "forced: its tokens are refused"
    );
    assert_eq!(published_kids(&t).await, std::slice::from_ref(&new));

    // A key that signed nothing goes without --force once a newer one signs.
    let newest = ok(&t, &["keys", "rotate"]).await.trim().to_owned();
    ok(&t, &["keys", "retire", &new]).await;
    assert_eq!(
        key_states(&t).await,
        [
            (old, "retired".into()),
            (new, "retired".into()),
            (newest.clone(), "signing".into())
        ]
    );
    refresh(&t).await;
    assert_eq!(kid_of(&t.issue(write_token()).await), newest);
}

async fn a_second_instance_takes_in_a_rotation_and_a_retirement_at_its_refresh(backend: Backend) {
    // Only the refreshes the test calls: the periodic one must not beat the assertions to it.
    let no_periodic_refresh = |s: &mut maestro::Settings| {
        s.catalog_refresh = std::time::Duration::from_secs(3600);
    };
    let a = TestApp::spawn_with(backend, no_periodic_refresh).await;
    let b = TestApp::spawn_on(a.db.clone(), no_periodic_refresh).await;
    let old_token = a.groundspan_token();
    let new = ok(&a, &["keys", "rotate"]).await.trim().to_owned();
    refresh(&a).await;
    let new_token = a.issue(write_token()).await;
    assert_eq!(kid_of(&new_token), new);

    assert_eq!(
        status_of(&b, &new_token).await,
        401,
        "b has not refreshed yet"
    );
    refresh(&b).await;
    assert_eq!(status_of(&b, &new_token).await, 200);
    assert!(published_kids(&b).await.contains(&new));
    assert_eq!(
        kid_of(&b.issue(write_token()).await),
        new,
        "b signs with it"
    );

    ok(&a, &["keys", "retire", &kid_of(&old_token), "--force"]).await;
    assert_eq!(status_of(&b, &old_token).await, 200, "until b refreshes");
    refresh(&b).await;
    assert_eq!(status_of(&b, &old_token).await, 401);
}

async fn during_the_grace_period_a_delivery_verifies_with_the_old_and_the_new_secret(
    backend: Backend,
) {
    let receiver = Receiver::start().await;
    let t = spawn(backend, &receiver).await;
    subscribe(&t, "itinerary").await;
    let stdout = ok(&t, &["partner", "rotate-secret", PARTNER, "--grace", "1h"]).await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the secret on stdout: {stdout:?}");
    let new_secret = lines[0].to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != SECRET);

    publish(&t, &event("itinerary")).await;
    let now = OffsetDateTime::now_utc();
    pass(&t, now).await;
    let got = &receiver.received()[0];
    let signatures: Vec<&str> = got.header("webhook-signature").split(' ').collect();
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    for secret in [SECRET, new_secret.as_str()] {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(got.body.as_bytes(), &got.headers)
            .unwrap_or_else(|err| panic!("{secret}: {err}"));
    }
    // The new secret's signature comes first.
    let mut first_only = got.headers.clone();
    first_only.insert("webhook-signature", signatures[0].parse().unwrap());
    standardwebhooks::Webhook::new(&new_secret)
        .unwrap()
        .verify(got.body.as_bytes(), &first_only)
        .expect("the first signature is the new secret's");

    // After the grace period, the new secret alone.
    publish(&t, &event("itinerary")).await;
    pass(&t, now + Duration::hours(2)).await;
    let got = &receiver.received()[1];
    assert!(!got.header("webhook-signature").contains(' '));
    assert!(
        standardwebhooks::Webhook::new(SECRET)
            .unwrap()
            .verify(got.body.as_bytes(), &got.headers)
            .is_err()
    );
}

async fn partner_show_prints_the_secret_only_when_asked(backend: Backend) {
    let receiver = Receiver::start().await;
    let t = spawn(backend, &receiver).await;
    assert_eq!(
        ok(&t, &["partner", "show", PARTNER, "--secret"]).await,
        format!("{SECRET}\n")
    );
    let shown = ok(&t, &["partner", "show", PARTNER]).await;
    assert!(shown.contains(&format!("id\t{PARTNER}")), "{shown}");
    assert!(!shown.contains("whsec_"), "{shown}");

    let new_secret = ok(&t, &["partner", "rotate-secret", PARTNER]).await;
    assert_eq!(
        ok(&t, &["partner", "show", PARTNER, "--secret"]).await,
        new_secret
    );
    let shown = ok(&t, &["partner", "show", PARTNER]).await;
    assert!(shown.contains("previous_secret_valid_until\t"), "{shown}");
    assert!(!shown.contains("whsec_"), "{shown}");
    let message = refused(&t, &["partner", "show", "nobody"]).await;
    assert!(message.contains("no partner nobody"), "{message}");
}
