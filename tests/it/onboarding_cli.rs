//! Onboarding from the command line, with the real binary: a partner's credentials (shown once,
//! rotated), an internal producer's, and a whole onboarding whose secrets reach neither the
//! database file nor the logs.

use serde_json::Value;

use crate::{
    helpers::*,
    real_binary::{maestro, migrated_dir, start_server_with, stop_gracefully},
};

fn credentials(dir: &std::path::Path, args: &[&str]) -> Value {
    let output = maestro(dir, args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "JSON and nothing else: {stdout:?}"
    );
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn partner_and_producer_credentials_are_printed_once_and_rotated_on_demand() {
    let dir = migrated_dir();
    let first = credentials(dir.path(), &["partner", "credentials", "groundspan"]);
    assert_eq!(first["client_id"], GROUNDSPAN);
    let secret = first["client_secret"].as_str().unwrap();
    assert!(secret.starts_with("mcs_"), "{first}");

    // The secret cannot be shown again: it is kept only as a hash.
    let again = maestro(dir.path(), &["partner", "credentials", "groundspan"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--rotate"));

    let rotated = credentials(
        dir.path(),
        &["partner", "credentials", "groundspan", "--rotate"],
    );
    assert_ne!(rotated["client_secret"], first["client_secret"]);

    let producer = credentials(
        dir.path(),
        &[
            "client",
            "create",
            "travel-core",
            "--scope",
            "maestro.events.publish",
        ],
    );
    assert_eq!(producer["client_id"], "travel-core");
    let unknown_scope = maestro(
        dir.path(),
        &["client", "create", "x", "--scope", "everything"],
    );
    assert!(!unknown_scope.status.success());
    let a_partner = maestro(
        dir.path(),
        &["client", "create", "groundspan", "--scope", WRITE],
    );
    assert!(!a_partner.status.success());
}

#[tokio::test]
async fn an_onboarding_leaves_no_secret_in_the_database_or_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, log) = start_server_with(dir.path(), &[]);
    let client_secret =
        credentials(dir.path(), &["partner", "credentials", "groundspan"])["client_secret"]
            .as_str()
            .unwrap()
            .to_owned();
    let admin = {
        let output = maestro(
            dir.path(),
            &[
                "token",
                "issue",
                "--type",
                "user",
                "--subject",
                "admin-1",
                "--company",
                COMPANY,
                "--role",
                "CompanyAdministrator",
            ],
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let client = http_client();
    let connected: Value = client
        .post(format!("{base}/app-mgmt/v0/connections"))
        .bearer_auth(&admin)
        .header("Content-Type", "application/json")
        .body(r#"{"appId":"groundspan"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let request_token = connected["requestToken"].as_str().unwrap().to_owned();
    let form = crate::app_center_helpers::form_body(&[
        ("grant_type", "password"),
        ("credtype", "authtoken"),
        ("username", COMPANY),
        ("password", &request_token),
    ]);
    let issued: Value = client
        .post(format!("{base}/oauth2/v0/token"))
        .basic_auth(GROUNDSPAN, Some(&client_secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh_token = issued["refresh_token"].as_str().unwrap().to_owned();
    let access_token = issued["access_token"].as_str().unwrap().to_owned();
    let accepted = client
        .post(format!("{base}/maestro/v4/alerts"))
        .bearer_auth(&access_token)
        .header("Content-Type", "application/json")
        .body(post_seed().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    stop_gracefully(server);
    let log = log.join().unwrap().join("\n");

    let mut database = Vec::new();
    for name in ["maestro.db", "maestro.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(name)) {
            database.extend(bytes);
        }
    }
    let database = String::from_utf8_lossy(&database);
    assert!(
        database.contains("$argon2id$"),
        "the secret's hash is stored"
    );
    for secret in [&client_secret, &request_token, &refresh_token] {
        let tail = &secret[4..];
        assert!(!database.contains(tail), "a secret in the database");
        assert!(!log.contains(tail), "a secret in the logs");
    }
    assert!(!log.contains(&access_token), "a token in the logs");
}
