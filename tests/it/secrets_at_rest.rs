//! Secrets at rest: what the database holds, read with a connection of the test's own.

use maestro::{App, Settings, config::Secret, store::secrets::MasterKey};

use crate::{
    delivery_helpers::SECRET,
    helpers::*,
    real_binary::{start_server_with, stop_gracefully},
};

crate::on_both_backends!(
    the_database_holds_no_plaintext_private_key_or_postback_secret,
    secrets_written_in_the_clear_the_old_way_are_encrypted_at_start,
    a_wrong_master_key_stops_start_up_naming_the_problem,
);

const SEALED: &str = "enc:v1:";

async fn stored_secrets(db: &TestDatabase) -> Vec<String> {
    let mut side = db.side_connection().await;
    let mut all = side.strings("SELECT private_pem FROM signing_keys").await;
    all.extend(side.strings("SELECT postback_secret FROM partners").await);
    all.extend(
        side.strings(
            "SELECT previous_postback_secret FROM partners \
             WHERE previous_postback_secret IS NOT NULL",
        )
        .await,
    );
    all
}

fn assert_all_sealed(stored: &[String]) {
    assert!(!stored.is_empty());
    for value in stored {
        assert!(
            value.starts_with(SEALED),
            "stored in the clear: {value:.40}"
        );
        assert!(!value.contains("PRIVATE KEY") && !value.contains("whsec_"));
    }
}

async fn the_database_holds_no_plaintext_private_key_or_postback_secret(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.import_partner("acme", &format!("postback_secret = \"{SECRET}\""))
        .await;
    assert!(
        t.db.cli(&["partner", "rotate-secret", "acme"])
            .await
            .status
            .success()
    );
    maestro::auth::rotation::rotate(&t.app.store).await.unwrap();
    let stored = stored_secrets(&t.db).await;
    assert_eq!(
        stored.len(),
        2 + 2 + 1,
        "two keys, two partners, one previous secret"
    );
    assert_all_sealed(&stored);
    // Read through the store, they are the secrets.
    let (acme, _) = t
        .app
        .store
        .partner_with_templates("acme")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acme.previous_postback_secret.as_deref(), Some(SECRET));
    assert!(acme.postback_secret.starts_with("whsec_"));
}

async fn secrets_written_in_the_clear_the_old_way_are_encrypted_at_start(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut side = t.db.side_connection().await;
    side.execute(&format!(
        "UPDATE partners SET postback_secret = '{SECRET}' WHERE id = 'groundspan'"
    ))
    .await;
    let pem = fixture("keys/rsa.pem");
    side.execute(&format!(
        "INSERT INTO signing_keys (kid, algorithm, private_pem, created_at) \
         VALUES ('legacy', 'RS256', '{pem}', '2020-01-01T00:00:00Z')"
    ))
    .await;
    assert!(stored_secrets(&t.db).await.iter().any(|s| s == SECRET));

    // Two instances start at once on the database: each finds the rows in the clear.
    let (b, c) = tokio::join!(
        TestApp::spawn_on(t.db.clone(), |_| {}),
        TestApp::spawn_on(t.db.clone(), |_| {})
    );
    assert_all_sealed(&stored_secrets(&t.db).await);
    for app in [&b, &c] {
        let (groundspan, _) = app
            .app
            .store
            .partner_with_templates(GROUNDSPAN)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(groundspan.postback_secret, SECRET);
        let keys = app.app.store.signing_keys().await.unwrap();
        let legacy = keys.iter().find(|k| k.kid == "legacy").unwrap();
        assert_eq!(legacy.private_pem, pem);
    }
}

async fn a_wrong_master_key_stops_start_up_naming_the_problem(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut settings = Settings::with_database("127.0.0.1:0", &t.db.url);
    settings.database.master_key = Some(Secret::new(MasterKey::generate().to_base64()));
    let message = match App::open(settings).await {
        Ok(_) => panic!("opened with another master key"),
        Err(err) => format!("{err:#}"),
    };
    assert!(
        message.contains("MAESTRO_MASTER_KEY") && message.contains("does not decrypt"),
        "{message}"
    );
}

/// On PostgreSQL the key is required: start-up without it stops, naming the variable.
#[tokio::test]
async fn postgres_without_a_master_key_refuses_to_start() {
    if !backend_available(Backend::Postgres).await {
        return;
    }
    let mut db = TestDatabase::new(Backend::Postgres).await;
    db.master_key = None;
    let settings = Settings::with_database("127.0.0.1:0", &db.url);
    let message = match App::open(settings).await {
        Ok(_) => panic!("started without a master key"),
        Err(err) => format!("{err:#}"),
    };
    assert!(message.contains("MAESTRO_MASTER_KEY"), "{message}");
    let output = db.cli(&["serve", "--listen", "127.0.0.1:0"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("MAESTRO_MASTER_KEY is not set"), "{stderr}");
}

/// On SQLite without the variable, the key file beside the database is made once, private, and
/// used by the server and the CLI alike.
#[tokio::test]
async fn on_sqlite_the_server_and_the_cli_share_the_key_file() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let key_file = t.db.dir().join("maestro.db.key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let output =
        t.db.cli(&[&["token", "issue"][..], &GROUNDSPAN_WRITE_TOKEN].concat())
            .await;
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap();
    assert_eq!(t.post_alert(token.trim(), &post_seed()).await.status(), 200);
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        key,
        "the same key file"
    );
}

/// The server and the CLI, given the key in `MAESTRO_MASTER_KEY`, log neither it nor a secret
/// nor a token, and make no key file.
#[tokio::test]
async fn neither_the_server_nor_the_cli_logs_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate().to_base64();
    let (server, base, log) = start_server_with(dir.path(), &[("MAESTRO_MASTER_KEY", &key)]);
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_maestro"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("MAESTRO_DATABASE_URL")
            .env("MAESTRO_MASTER_KEY", &key)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        (
            stdout.trim().to_owned(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (secret, rotate_log) = cli(&["partner", "rotate-secret", GROUNDSPAN]);
    let (shown, show_log) = cli(&["partner", "show", GROUNDSPAN, "--secret"]);
    assert_eq!(shown, secret);
    let (token, issue_log) = cli(&[&["token", "issue"][..], &GROUNDSPAN_WRITE_TOKEN].concat());
    let (_, keys_log) = cli(&["keys", "rotate"]);
    let response = http_client()
        .post(format!("{base}/maestro/v4/alerts"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body(post_seed().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    stop_gracefully(server);
    let server_log = log.join().unwrap().join("\n");
    assert!(!dir.path().join("maestro.db.key").exists());
    for log in [server_log, rotate_log, show_log, issue_log, keys_log] {
        for secret in [key.as_str(), &secret, &token, "whsec_", "PRIVATE KEY"] {
            assert!(!log.contains(secret), "{secret:.12} in a log: {log}");
        }
    }
}
