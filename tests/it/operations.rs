//! The real binary in operation: draining on SIGTERM, `maestro backup` under writes, commands
//! that refuse a database that does not exist, error messages that name what is at fault, and
//! shell completions.

use std::{
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    helpers::*,
    real_binary::{KillOnDrop, issue_token, maestro, migrated_dir, post, start_server_with},
};

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// After SIGTERM, `/readyz` answers 503 for the drain delay while other requests are still
/// answered; then the server stops as before.
#[tokio::test]
async fn a_draining_server_is_not_ready_but_still_serves() {
    let dir = tempfile::tempdir().unwrap();
    let drain = Duration::from_secs(3);
    let (server, base, log) = start_server_with(dir.path(), &[("MAESTRO_DRAIN_DELAY", "3s")]);
    let mut server = KillOnDrop(Some(server));
    let client = http_client();
    let get = |path: &str| client.get(format!("{base}{path}")).send();
    assert_eq!(get("/readyz").await.unwrap().status(), 200);

    let pid = server.0.as_ref().unwrap().id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let signalled = Instant::now();
    let mut ready = get("/readyz").await.unwrap();
    while ready.status() == 200 && signalled.elapsed() < drain {
        tokio::time::sleep(Duration::from_millis(10)).await;
        ready = get("/readyz").await.unwrap();
    }
    assert_eq!(ready.status(), 503, "not ready while draining");
    assert!(ready.headers().contains_key("retry-after"));
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["errors"][0]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("shutting down")
    );
    // Meanwhile requests are served: the listener is still open.
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/openapi.json").await.unwrap().status(), 200);
    assert!(
        signalled.elapsed() < drain,
        "observed within the drain delay"
    );

    let exit = tokio::task::spawn_blocking(move || server.0.take().unwrap().wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(
        signalled.elapsed() >= drain,
        "the listener stayed open for the delay"
    );
    let log = log.join().unwrap().join("\n");
    assert!(log.contains("draining"), "{log}");
}

/// A second signal (Ctrl-C twice at a terminal) ends the drain at once.
#[tokio::test]
async fn a_second_signal_cuts_the_drain_short() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, _log) = start_server_with(dir.path(), &[("MAESTRO_DRAIN_DELAY", "10min")]);
    let mut server = KillOnDrop(Some(server));
    let pid = server.0.as_ref().unwrap().id().to_string();
    let signal = || {
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    signal();
    let client = http_client();
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        == 200
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal();
    let exit = tokio::task::spawn_blocking(move || server.0.take().unwrap().wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// A backup taken while alerts are being written is a sound database holding every alert
/// acknowledged before it started; with its key file, a server runs on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_writes_is_consistent_and_serves() {
    let dir = migrated_dir();
    let token = issue_token(dir.path());
    let (server, base, _log) = start_server_with(dir.path(), &[]);
    let _server = KillOnDrop(Some(server));
    let client = http_client();
    let mut acknowledged = Vec::new();
    for _ in 0..20 {
        let created = post(&client, &base, &token, &post_seed()).await;
        acknowledged.push(created["alertId"].as_str().unwrap().to_owned());
    }
    let first = post_seed();
    acknowledged.push(
        post(&client, &base, &token, &first).await["alertId"]
            .as_str()
            .unwrap()
            .into(),
    );

    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (client, base, token, writing) =
            (client.clone(), base.clone(), token.clone(), writing.clone());
        tokio::spawn(async move {
            let mut written = 0;
            while writing.load(Ordering::Relaxed) {
                post(&client, &base, &token, &post_seed()).await;
                written += 1;
            }
            written
        })
    };
    let copies = tempfile::tempdir().unwrap();
    let copy = copies.path().join("maestro.db");
    let backup = {
        let (dir, copy) = (dir.path().to_owned(), copy.clone());
        tokio::task::spawn_blocking(move || maestro(&dir, &["backup", copy.to_str().unwrap()]))
    };
    let output = backup.await.unwrap();
    writing.store(false, Ordering::Relaxed);
    let written_meanwhile = writer.await.unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        written_meanwhile > 0,
        "alerts were written during the backup"
    );

    let db = rusqlite::Connection::open(&copy).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let stored: Vec<String> = {
        let mut ids = db.prepare("SELECT id FROM alerts").unwrap();
        ids.query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for id in &acknowledged {
        assert!(stored.contains(id), "{id} missing from the copy");
    }
    drop(db);
    assert_eq!(
        std::fs::read(copies.path().join("maestro.db.key")).unwrap(),
        std::fs::read(dir.path().join("maestro.db.key")).unwrap(),
        "the key file is copied beside the backup"
    );

    // The copy serves: the alert acknowledged before the backup is there, its secrets open.
    let (restored, base, _log) = start_server_with(copies.path(), &[]);
    let _restored = KillOnDrop(Some(restored));
    let again = post(&client, &base, &token, &first).await;
    assert_eq!(again["message"], "Alert already received (identical retry)");

    // An existing copy is replaced only with --force.
    let output = maestro(dir.path(), &["backup", copy.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        stderr_of(&output).contains("exists already; give --force"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn a_backup_can_be_forced_over_an_old_one_and_postgres_is_pointed_at_pg_dump() {
    let dir = migrated_dir();
    let copy = dir.path().join("copy.db");
    for args in [
        vec!["backup", "copy.db"],
        vec!["backup", "copy.db", "--force"],
    ] {
        let output = maestro(dir.path(), &args);
        assert!(output.status.success(), "{}", stderr_of(&output));
    }
    assert!(copy.exists() && dir.path().join("copy.db.key").exists());
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(
        entries, 4,
        "the database, the copy and their keys; no drafts left"
    );

    let url = "postgres://postgres@127.0.0.1:5432/maestro";
    let output = maestro(dir.path(), &["backup", "x.dump", "--database-url", url]);
    assert!(!output.status.success());
    assert!(
        stderr_of(&output).contains("pg_dump"),
        "{}",
        stderr_of(&output)
    );
}

/// Only `serve` and `migrate` make a database: any other command run where there is none says
/// where it looked, and leaves nothing behind.
#[test]
fn commands_other_than_serve_and_migrate_refuse_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let expected = format!(
        "the database file {} does not exist",
        dir.path().join("maestro.db").display()
    );
    for args in [
        &["token", "issue", "--type", "company", "--subject", COMPANY][..],
        &["partner", "list"],
        &["keys", "rotate"],
        &["delivery", "list"],
        &["backup", "copy.db"],
    ] {
        let output = maestro(dir.path(), args);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            stderr_of(&output).contains(&expected),
            "{args:?}: {}",
            stderr_of(&output)
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was made"
    );
}

#[tokio::test]
async fn commands_other_than_serve_and_migrate_refuse_an_empty_postgres_database() {
    if !backend_available(Backend::Postgres).await {
        return;
    }
    let db = TestDatabase::new(Backend::Postgres).await;
    let output = db.cli(&["keys", "list"]).await;
    assert!(!output.status.success());
    assert!(
        stderr_of(&output).contains("holds no maestro schema"),
        "{}",
        stderr_of(&output)
    );
    assert!(db.cli(&["migrate"]).await.status.success());
    let output = db.cli(&["keys", "list", "--output", "json"]).await;
    assert!(output.status.success(), "{}", stderr_of(&output));
}

/// A database a newer maestro migrated is refused, not misread.
#[test]
fn a_database_from_a_newer_maestro_is_refused() {
    let dir = migrated_dir();
    let db = rusqlite::Connection::open(dir.path().join("maestro.db")).unwrap();
    db.pragma_update(None, "user_version", 999).unwrap();
    drop(db);
    let output = maestro(dir.path(), &["keys", "list"]);
    assert!(!output.status.success());
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("schema is at version 999, newer than this maestro's"),
        "{stderr}"
    );
}

#[test]
fn errors_name_the_address_the_file_or_the_host_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = maestro(dir.path(), &["serve", "--listen", &address]);
    assert!(
        stderr_of(&output).contains(&format!("cannot listen on {address}: ")),
        "{}",
        stderr_of(&output)
    );

    let missing = dir.path().join("no/such/dir/maestro.db");
    let url = format!("sqlite://{}", missing.display());
    let output = maestro(dir.path(), &["migrate", "--database-url", &url]);
    let expected = format!("cannot open the database file {}: ", missing.display());
    assert!(
        stderr_of(&output).contains(&expected),
        "{}",
        stderr_of(&output)
    );

    let url = "postgres://postgres@127.0.0.1:1/maestro";
    let output = Command::new(crate::real_binary::BIN)
        .args(["migrate", "--database-url", url, "--database-timeout", "2s"])
        .env(
            "MAESTRO_MASTER_KEY",
            maestro::store::secrets::MasterKey::generate().to_base64(),
        )
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("PostgreSQL at 127.0.0.1:1 (database maestro) is unreachable: "),
        "{stderr}"
    );
}

#[test]
fn completions_print_a_script_for_each_shell() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef maestro"),
        ("fish", "complete -c maestro"),
    ] {
        let output = maestro(dir, &["completions", shell]);
        assert!(output.status.success(), "{shell}: {}", stderr_of(&output));
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script:.200}");
        assert!(
            script.contains("backup") && script.contains("--output"),
            "{shell}"
        );
    }
}

/// List commands print a header row, or one JSON array with `--output json`.
#[test]
fn list_commands_print_a_header_or_a_json_array() {
    let dir = migrated_dir();
    issue_token(dir.path()); // the first token makes the first signing key
    let partner = dir.path().join("acme");
    std::fs::create_dir_all(&partner).unwrap();
    std::fs::write(
        partner.join("partner.toml"),
        "id = \"acme\"\nname = \"Acme Travel\"\nallowed_url_domains = [\"acme.example\"]\n\
         postback_url = \"https://acme.example/hook\"\n",
    )
    .unwrap();
    let import = maestro(dir.path(), &["partner", "import", "acme"]);
    assert!(import.status.success(), "{}", stderr_of(&import));
    let json = |args: &[&str]| -> Vec<Value> {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let output = maestro(dir.path(), &all);
        assert!(output.status.success(), "{args:?}: {}", stderr_of(&output));
        let text = String::from_utf8(output.stdout).unwrap();
        assert_eq!(text.lines().count(), 1, "one line of JSON: {text}");
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let keys = json(&["keys", "list"]);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["state"], "signing");
    assert_eq!(keys[0]["algorithm"], "RS256");
    assert!(keys[0].get("privateKey").is_none() && keys[0].get("pem").is_none());
    let partners = json(&["partner", "list"]);
    let acme = partners
        .iter()
        .find(|partner| partner["id"] == "acme")
        .unwrap();
    let expected = serde_json::json!({
        "id": "acme", "name": "Acme Travel", "allowedUrlDomains": ["acme.example"],
        "postbackUrl": "https://acme.example/hook"
    });
    assert_eq!(acme, &expected);
    assert!(partners.iter().any(|partner| partner["id"] == GROUNDSPAN));
    assert_eq!(json(&["delivery", "list"]), Vec::<Value>::new());

    for (args, header) in [
        (&["keys", "list"][..], "KID"),
        (&["partner", "list"], "ID"),
        (&["delivery", "list"], "ID"),
    ] {
        let output = maestro(dir.path(), args);
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.starts_with(header), "{args:?}: {text}");
    }
    // Each column starts where its header does.
    let table = String::from_utf8(maestro(dir.path(), &["partner", "list"]).stdout).unwrap();
    let header = table.lines().next().unwrap();
    assert_eq!(
        header
            .split("  ")
            .map(str::trim)
            .filter(|cell| !cell.is_empty())
            .collect::<Vec<_>>(),
        ["ID", "NAME", "URL DOMAINS", "POSTBACK URL"]
    );
    let acme = table
        .lines()
        .find(|line| line.starts_with("acme "))
        .unwrap();
    for (title, value) in [
        ("NAME", "Acme Travel"),
        ("URL DOMAINS", "acme.example"),
        ("POSTBACK URL", "https://"),
    ] {
        let column = header.find(title).unwrap();
        assert!(acme[column..].starts_with(value), "{title}: {table}");
    }
}
