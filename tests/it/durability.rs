//! The real binary: the CLI's public interface, and an acknowledged alert surviving `kill -9`.

use serde_json::Value;

use crate::{helpers::*, real_binary::*};

#[tokio::test]
async fn an_acknowledged_alert_survives_kill_9() {
    let dir = migrated_dir();
    let token = issue_token(dir.path());
    let client = http_client();
    let body = post_seed();

    let (mut server, base, _) = start_server(dir.path());
    let created = post(&client, &base, &token, &body).await;
    assert_eq!(created["message"], "Alert created successfully");
    server.kill().unwrap(); // SIGKILL: no shutdown, no flush
    server.wait().unwrap();

    let (server, base, log) = start_server(dir.path());
    // The alert is there: an identical POST is recognised as a retry of it...
    let again = post(&client, &base, &token, &body).await;
    assert_eq!(again["alertId"], created["alertId"]);
    assert_eq!(again["message"], "Alert already received (identical retry)");
    // ...and it can be updated by id.
    let response = client
        .put(format!(
            "{base}/maestro/v4/alerts/{}",
            created["alertId"].as_str().unwrap()
        ))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(seed_with_ext_ref("groundspan_put.json", &body).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // SIGTERM: a graceful stop, after which every log line has been written.
    stop_gracefully(server);
    assert_logs_are_json_with_correlation_ids_and_no_token(&log.join().unwrap(), &token);
}

fn seed_with_ext_ref(name: &str, like: &Value) -> Value {
    let mut body = seed(name);
    body["extRef"] = like["extRef"].clone();
    body
}

#[test]
fn partner_import_upserts_and_list_shows_the_partners() {
    let dir = migrated_dir();
    let partner = dir.path().join("acme");
    std::fs::create_dir_all(partner.join("templates/OFFER")).unwrap();
    std::fs::write(
        partner.join("partner.toml"),
        "id = \"acme\"\nname = \"Acme\"\nallowed_url_domains = [\"acme.example\"]\npostback_url = \"https://acme.example/hook\"\n",
    )
    .unwrap();
    std::fs::write(
        partner.join("templates/OFFER/schema.json"),
        r#"{"type": "object"}"#,
    )
    .unwrap();

    let output = maestro(
        dir.path(),
        &["partner", "import", partner.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("created partner acme"), "{stdout}");
    assert!(
        stdout.contains("template OFFER v1 (new version)"),
        "{stdout}"
    );

    std::fs::write(
        partner.join("templates/OFFER/schema.json"),
        r#"{"type": "object", "required": ["x"]}"#,
    )
    .unwrap();
    let output = maestro(
        dir.path(),
        &["partner", "import", partner.to_str().unwrap()],
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("updated partner acme"), "{stdout}");
    assert!(
        stdout.contains("template OFFER v2 (new version)"),
        "{stdout}"
    );

    let output = maestro(dir.path(), &["partner", "list", "--output", "json"]);
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|partner| partner["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"acme") && ids.contains(&GROUNDSPAN),
        "{listed}"
    );
}

#[test]
fn a_broken_partner_directory_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let partner = dir.path().join("broken");
    std::fs::create_dir_all(partner.join("templates/T")).unwrap();
    std::fs::write(
        partner.join("partner.toml"),
        "id = \"broken\"\nname = \"B\"\n",
    )
    .unwrap();
    std::fs::write(partner.join("templates/T/schema.json"), "{not json").unwrap();
    let output = maestro(
        dir.path(),
        &["partner", "import", partner.to_str().unwrap()],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("templates/T/schema.json: not JSON"),
        "{stderr}"
    );
}

#[test]
fn migrate_creates_the_database() {
    let dir = migrated_dir();
    assert!(dir.path().join("maestro.db").exists());
}

/// Container environments write `VAR=` for "not given": every variable `serve` reads, set to the
/// empty string, is as if unset.
#[tokio::test]
async fn empty_variables_count_as_unset() {
    let variables: Vec<String> = maestro::config::declared::<maestro::Settings>()
        .into_iter()
        .map(|setting| setting.variable)
        .chain(["MAESTRO_CONFIG".to_owned()])
        .collect();
    for expected in [
        "MAESTRO_DELIVERY_ALLOWED_SUBNETS",
        "MAESTRO_DATABASE_URL",
        "MAESTRO_REQUEST_TIMEOUT",
        "MAESTRO_TRUSTED_JWKS",
        "MAESTRO_DRAIN_DELAY",
    ] {
        assert!(variables.iter().any(|v| v == expected), "{expected}");
    }
    let empty: Vec<(&str, &str)> = variables.iter().map(|v| (v.as_str(), "")).collect();
    let dir = tempfile::tempdir().unwrap();
    let (server, base, _) = start_server_with(dir.path(), &empty);
    let server = KillOnDrop(Some(server));
    let health = http_client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // The defaults apply: the database is the default file in the working directory.
    assert!(dir.path().join("maestro.db").exists());
    drop(server);
}

fn assert_logs_are_json_with_correlation_ids_and_no_token(log: &[String], token: &str) {
    let signature = token.rsplit('.').next().unwrap();
    let mut requests = 0;
    for line in log {
        assert!(!line.contains(signature), "a token reached the log: {line}");
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if entry["message"] == "request finished" {
            requests += 1;
            let id = entry["span"]["correlation_id"].as_str().unwrap();
            uuid::Uuid::parse_str(id).unwrap();
        }
    }
    assert!(requests >= 1, "no request was logged: {log:?}");
}

#[test]
fn event_publish_records_an_event_from_a_file() {
    let dir = migrated_dir();
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"type": "profile", "eventType": "UPDATE", "companyId": "c1", "userLogin": "cm@example.com", "occurredAt": "2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let output = maestro(dir.path(), &["event", "publish", event.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with("evt_") && stdout.trim_end().ends_with("\t0 deliveries"),
        "{stdout:?}"
    );

    std::fs::write(&event, r#"{"type": "profile"}"#).unwrap();
    let output = maestro(dir.path(), &["event", "publish", event.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("eventType is required"));
}

/// A delivery in flight when the process is killed is sent again after a restart, under the
/// same `webhook-id`, and the CLI shows its attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_interrupted_by_kill_9_is_sent_after_restart() {
    use std::time::Duration;

    use crate::receiver::{Answer, Receiver};

    let receiver = Receiver::start().await;
    // The first attempt hangs: the process dies while the partner is "answering".
    receiver.script([Answer::status(200).after(Duration::from_secs(600))]);
    let dir = migrated_dir();
    let partner = dir.path().join("acme");
    std::fs::create_dir_all(partner.join("templates/OFFER")).unwrap();
    std::fs::write(
        partner.join("partner.toml"),
        format!(
            "id = \"acme\"\nname = \"Acme\"\nallowed_url_domains = [\"acme.example\"]\n\
             postback_url = \"{}\"\n",
            receiver.url
        ),
    )
    .unwrap();
    std::fs::write(
        partner.join("templates/OFFER/schema.json"),
        "{\"type\": \"object\"}",
    )
    .unwrap();
    assert!(
        maestro(
            dir.path(),
            &["partner", "import", partner.to_str().unwrap()]
        )
        .status
        .success()
    );
    let env = [
        ("MAESTRO_DELIVERY_ALLOWED_SUBNETS", "127.0.0.0/8"),
        ("MAESTRO_DELIVERY_RETRY_SCHEDULE", "1s"),
    ];
    let token = |args: &[&str]| {
        let mut all = vec!["token", "issue"];
        all.extend_from_slice(args);
        let output = maestro(dir.path(), &all);
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let admin = token(&[
        "--type",
        "user",
        "--subject",
        "u-1",
        "--app",
        "acme",
        "--company",
        COMPANY,
        "--role",
        "CompanyAdministrator",
    ]);
    let producer = token(&[
        "--type",
        "app",
        "--subject",
        "core",
        "--app",
        "core",
        "--scope",
        "maestro.events.publish",
    ]);

    let (server, base, _log) = start_server_with(dir.path(), &env);
    // Killed however the test ends, so that a failing run leaves no server behind.
    let server = KillOnDrop(Some(server));
    let client = http_client();
    let subscribed = client
        .post(format!("{base}/api/company/v1.0/subscribe?type=itinerary"))
        .header("Authorization", format!("OAuth {admin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), 200);
    let published = client
        .post(format!("{base}/internal/v1/company-events"))
        .bearer_auth(&producer)
        .json(&serde_json::json!({
            "type": "itinerary", "eventType": "UPDATE", "companyId": COMPANY,
            "userLogin": "cm@example.com", "tripId": "T-1", "occurredAt": "2026-11-24T08:00:00Z"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 202);
    let first = receiver.wait_for(1).await;
    drop(server); // SIGKILL in the middle of the request

    let (restarted, _base, _log) = start_server_with(dir.path(), &env);
    let mut server = KillOnDrop(Some(restarted));
    let both = receiver.wait_for(2).await;
    assert_eq!(both[1].webhook_id(), first[0].webhook_id());
    assert_eq!(both[1].body, first[0].body);
    stop_gracefully(server.0.take().unwrap());

    let listed = maestro(dir.path(), &["delivery", "list", "--status", "delivered"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    let rows: Vec<&str> = listed.lines().collect();
    assert!(rows[0].starts_with("ID  "), "a header row: {listed}");
    assert!(rows[1].starts_with(first[0].webhook_id()), "{listed}");
    let listed = maestro(
        dir.path(),
        &[
            "delivery",
            "list",
            "--status",
            "delivered",
            "--output",
            "json",
        ],
    );
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["id"], first[0].webhook_id());
    assert_eq!(listed[0]["status"], "delivered");
    assert_eq!(listed[0]["partnerId"], "acme");
    let shown = maestro(dir.path(), &["delivery", "show", first[0].webhook_id()]);
    let shown = String::from_utf8(shown.stdout).unwrap();
    assert!(shown.contains("\tdelivered\t"), "{shown}");
}
