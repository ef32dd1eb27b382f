//! The packaging under deploy/ and at the root, checked with what runs without a Docker engine
//! or a running systemd: the compose files through `docker compose config` (or the older
//! `docker-compose`), the unit through `systemd-analyze verify`, the Dockerfile and the LICENSE
//! read as text. A missing tool skips its check with a message, and fails it under `CI=true`
//! (`.ci/run` installs them).

use std::{
    path::PathBuf,
    process::{Command, Output},
    time::Duration,
};

/// The drain delay of SPEC §7 (`MAESTRO_DRAIN_DELAY`, default 5 s): `/readyz` answers 503 for it
/// before the shutdown grace starts.
const DRAIN_DELAY: Duration = Duration::from_secs(5);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What SIGTERM may take at most with the default settings.
fn default_stop_time() -> Duration {
    maestro::Settings::with_database("127.0.0.1:0", "sqlite://x.db").shutdown_grace + DRAIN_DELAY
}

/// Whether `program args…` runs here.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success())
}

/// A check whose tool is missing is skipped, or fails under CI.
fn skip(tool: &str, what: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "{tool} does not run (CI=true); .ci/run installs it for {what}"
    );
    eprintln!("skipped: {what} needs {tool}, which does not run here");
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_license_is_the_apache_2_0_text_cargo_toml_names() {
    assert!(read("Cargo.toml").contains("license = \"Apache-2.0\""));
    let license = read("LICENSE");
    assert!(license.contains("Version 2.0, January 2004"));
    // The text as the Apache Software Foundation publishes it, unaltered.
    assert_eq!(
        maestro::digest::sha256_hex(license.as_bytes()),
        "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
    );
}

#[test]
fn the_dockerfile_builds_release_and_runs_as_non_root_with_data_in_a_volume() {
    let dockerfile = read("Dockerfile");
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "multi-stage: {stages:?}");
    assert!(stages[0].starts_with("FROM rust:"), "{}", stages[0]);
    assert!(stages[1].contains("distroless"), "{}", stages[1]);
    assert!(dockerfile.contains("cargo build --release --locked"));
    for line in [
        "USER nonroot",
        "VOLUME /var/lib/maestro",
        "ENV MAESTRO_DATABASE_URL=sqlite:///var/lib/maestro/maestro.db \\",
        "    MAESTRO_LISTEN=0.0.0.0:8080",
        "EXPOSE 8080",
    ] {
        assert!(dockerfile.lines().any(|l| l == line), "no {line:?}");
    }
    let ignored = read(".dockerignore");
    assert!(
        ignored.lines().any(|l| l == "target/"),
        "the build output stays out of the context"
    );
}

#[test]
fn the_compose_files_are_valid_and_postgres_requires_the_master_key() {
    let compose: Vec<&str> = if runs("docker", &["compose", "version"]) {
        vec!["docker", "compose"]
    } else if runs("docker-compose", &["version"]) {
        vec!["docker-compose"]
    } else {
        return skip("docker compose (or docker-compose)", "the compose check");
    };
    // Only what the test gives: no deploy/.env of a developer's, no variable of the shell's.
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("empty.env");
    std::fs::write(&env_file, "").unwrap();
    let config = |file: &str, env: &[(&str, &str)]| {
        let mut command = Command::new(compose[0]);
        command
            .args(&compose[1..])
            .arg("--env-file")
            .arg(&env_file)
            .args([
                "-f",
                &root().join("deploy").join(file).to_string_lossy(),
                "config",
            ])
            .env_remove("MAESTRO_MASTER_KEY")
            .env_remove("POSTGRES_PASSWORD")
            .envs(env.iter().copied());
        command.output().unwrap()
    };
    let stop = format!("stop_grace_period: {}s", 45);
    assert!(default_stop_time() < Duration::from_secs(45));

    let sqlite = config("compose.sqlite.yaml", &[]);
    assert!(sqlite.status.success(), "{}", stderr(&sqlite));
    let text = String::from_utf8(sqlite.stdout).unwrap();
    assert!(
        text.contains("/var/lib/maestro") && text.contains(&stop),
        "{text}"
    );

    let secrets = [("MAESTRO_MASTER_KEY", "a2V5"), ("POSTGRES_PASSWORD", "pw")];
    let postgres = config("compose.postgres.yaml", &secrets);
    assert!(postgres.status.success(), "{}", stderr(&postgres));
    let text = String::from_utf8(postgres.stdout).unwrap();
    for service in ["postgres:", "maestro-1:", "maestro-2:", "proxy:"] {
        assert!(text.contains(service), "no {service} in\n{text}");
    }
    assert!(text.contains("MAESTRO_MASTER_KEY: a2V5"), "{text}");
    assert_eq!(text.matches(&stop).count(), 2, "{text}");

    let keyless = config("compose.postgres.yaml", &secrets[1..]);
    assert!(
        !keyless.status.success(),
        "compose starts without a master key"
    );
    assert!(
        stderr(&keyless).contains("MAESTRO_MASTER_KEY"),
        "{}",
        stderr(&keyless)
    );
}

#[test]
fn the_systemd_unit_verifies_and_outlasts_a_graceful_stop() {
    let unit = read("deploy/maestro.service");
    let setting = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}="))
            .to_owned()
    };
    let stop = humantime::parse_duration(&setting("TimeoutStopSec")).unwrap();
    assert!(stop > default_stop_time(), "{stop:?}");
    assert_eq!(setting("KillSignal"), "SIGTERM");
    assert_eq!(setting("StateDirectory"), "maestro");
    for hardening in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.lines().any(|l| l == hardening), "no {hardening}");
    }
    assert!(setting("RestrictAddressFamilies").contains("AF_INET6"));
    assert!(setting("LimitNOFILE").parse::<u64>().unwrap() >= 65_536);

    if !runs("systemd-analyze", &["--version"]) {
        return skip("systemd-analyze", "the unit check");
    }
    // verify wants ExecStart's program to exist: the unit as written, run with this build.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("maestro.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/maestro", env!("CARGO_BIN_EXE_maestro")),
    )
    .unwrap();
    let verified = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    // Unknown or misspelt settings are only warned about: any output is a failure.
    let said = format!(
        "{}{}",
        stderr(&verified),
        String::from_utf8_lossy(&verified.stdout)
    );
    assert!(
        verified.status.success() && said.trim().is_empty(),
        "{said}"
    );
}
