//! The real binary's configuration: the file, the variables and the flags in their order,
//! `config show`, and start-up refused for an unknown key or a bad value, naming it.

use std::{path::Path, process::Command};

use serde_json::Value;

use crate::{
    helpers::*,
    real_binary::{BIN, KillOnDrop, start_server_with},
};

/// Runs `maestro` in `dir` with only `env` of the settings' variables set.
fn maestro_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MAESTRO_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn show(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["config", "show"];
    all.extend_from_slice(args);
    let output = maestro_with(dir, &all, env);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The line of `key` in `config show`'s output.
fn line<'a>(shown: &'a str, key: &str) -> &'a str {
    shown
        .lines()
        .find(|line| line.starts_with(&format!("{key} =")) || line.starts_with(&format!("# {key}")))
        .unwrap_or_else(|| panic!("no {key} in {shown}"))
}

#[test]
fn flags_win_over_variables_which_win_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("maestro.toml");
    std::fs::write(
        &file,
        "sweep_interval = \"1s\"\nrequest_timeout = \"9s\"\nmax_body_bytes = 1000\n\
         delivery_allowed_subnets = [\"10.0.0.0/8\"]\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let key = "q83vEjRWeJC6ze8SNFZ4kLrN7xI0VniQus3vEjRWeJA=";
    let env = [
        ("MAESTRO_CONFIG", file.as_str()),
        ("MAESTRO_SWEEP_INTERVAL", "2s"),
        ("MAESTRO_REQUEST_TIMEOUT", "7s"),
        ("MAESTRO_MASTER_KEY", key),
        (
            "MAESTRO_DATABASE_URL",
            "postgres://maestro:pa55word@db.internal/maestro",
        ),
        ("MAESTRO_TRUSTED_AUDIENCE", ""),
    ];
    let shown = show(dir.path(), &["--sweep-interval", "3s"], &env);
    assert_eq!(
        line(&shown, "sweep_interval"),
        "sweep_interval = \"3s\"  # --sweep-interval"
    );
    assert_eq!(
        line(&shown, "request_timeout"),
        "request_timeout = \"7s\"  # MAESTRO_REQUEST_TIMEOUT"
    );
    assert_eq!(
        line(&shown, "max_body_bytes"),
        format!("max_body_bytes = 1000  # {file}")
    );
    assert_eq!(
        line(&shown, "delivery_allowed_subnets"),
        format!("delivery_allowed_subnets = [\"10.0.0.0/8\"]  # {file}")
    );
    assert_eq!(
        line(&shown, "listen"),
        "listen = \"127.0.0.1:8080\"  # default"
    );
    assert_eq!(
        line(&shown, "trusted_audience"),
        "# trusted_audience  # not set",
        "empty is unset"
    );
    // No secret is printed: the master key's line is commented out, the password replaced.
    assert_eq!(
        line(&shown, "master_key"),
        "# master_key = \"<redacted>\"  # MAESTRO_MASTER_KEY"
    );
    assert!(
        !shown.contains(key) && !shown.contains("pa55word"),
        "{shown}"
    );
    assert!(
        shown.contains("postgres://maestro:redacted@db.internal/maestro"),
        "{shown}"
    );

    // The file is also given by --config, which wins over MAESTRO_CONFIG.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "max_body_bytes = 2000\n").unwrap();
    let shown = show(dir.path(), &["--config", other.to_str().unwrap()], &env);
    assert!(
        line(&shown, "max_body_bytes").starts_with("max_body_bytes = 2000  # "),
        "{shown}"
    );
}

/// `serve` reads the file too: its public URL (in the OpenAPI document) comes from the file,
/// its listening address from the flag that overrides the file's.
#[tokio::test]
async fn the_server_runs_with_the_file_under_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("maestro.toml");
    std::fs::write(
        &file,
        "public_url = \"https://maestro.file.example\"\nlisten = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let (server, base, _log) =
        start_server_with(dir.path(), &[("MAESTRO_CONFIG", file.to_str().unwrap())]);
    let _server = KillOnDrop(Some(server));
    let document: Value = http_client()
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        document["servers"][0]["url"],
        "https://maestro.file.example"
    );
    assert!(!base.ends_with(":1"), "the flag's port 0 won: {base}");
}

fn refused(dir: &Path, env: &[(&str, &str)]) -> String {
    let output = maestro_with(dir, &["serve", "--listen", "127.0.0.1:0"], env);
    assert!(!output.status.success(), "started: {output:?}");
    assert!(
        !dir.join("maestro.db").exists(),
        "refused before opening the database"
    );
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn an_unknown_key_or_a_bad_value_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("maestro.toml");
    let config = file.to_str().unwrap();
    std::fs::write(&file, "max_body_bytes = 1000\nmax_bodybytes = 10\n").unwrap();
    let stderr = refused(dir.path(), &[("MAESTRO_CONFIG", config)]);
    assert!(
        stderr.contains(&format!(
            "the configuration file {config}: unknown key `max_bodybytes`"
        )),
        "{stderr}"
    );

    std::fs::write(&file, "request_timeout = \"30 parsecs\"\n").unwrap();
    let stderr = refused(dir.path(), &[("MAESTRO_CONFIG", config)]);
    assert!(
        stderr.contains(&format!(
            "the configuration file {config}: request_timeout: invalid duration \"30 parsecs\""
        )),
        "{stderr}"
    );

    let stderr = refused(dir.path(), &[("MAESTRO_MAX_BODY_BYTES", "lots")]);
    assert!(stderr.contains("MAESTRO_MAX_BODY_BYTES: "), "{stderr}");
    assert!(stderr.contains("lots"), "{stderr}");
    let stderr = refused(dir.path(), &[("MAESTRO_ROLE", "boss")]);
    assert!(
        stderr.contains("MAESTRO_ROLE: invalid value \"boss\": one of all, api, worker"),
        "{stderr}"
    );

    let missing = dir.path().join("missing.toml");
    let stderr = refused(dir.path(), &[("MAESTRO_CONFIG", missing.to_str().unwrap())]);
    assert!(
        stderr.contains(&format!(
            "cannot read the configuration file {}",
            missing.display()
        )),
        "{stderr}"
    );
}

/// The shipped example sets every key to its default: `config show` with it says so.
#[test]
fn the_example_file_gives_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("maestro.example.toml");
    let example = example.to_str().unwrap();
    let with_example = show(dir.path(), &["--config", example], &[]);
    let defaults = show(dir.path(), &[], &[]);
    assert_eq!(with_example.replace(example, "default"), defaults);
}

/// An API or worker instance on SQLite warns at start that it would contend with the others
/// for the database's one write lock; one running both parts does not.
#[test]
fn a_split_instance_on_sqlite_warns_at_start() {
    use std::io::{BufRead, BufReader};
    for (role, warns) in [("api", true), ("worker", true), ("all", false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--role", role])
            .current_dir(dir.path())
            .env_remove("MAESTRO_DATABASE_URL")
            .env_remove("MAESTRO_ROLE")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let _server = KillOnDrop(Some(child));
        let mut warned = false;
        for line in BufReader::new(stderr).lines() {
            let entry: Value = serde_json::from_str(&line.unwrap()).unwrap_or(Value::Null);
            if entry["message"] == "listening" {
                break;
            }
            let message = entry["message"].as_str().unwrap_or_default();
            warned |= entry["level"] == "WARN" && message.contains("one write lock");
        }
        assert_eq!(warned, warns, "--role {role}");
    }
}
