//! The real binary, as the black-box suites drive it: `maestro` commands run in a directory of
//! their own, a server started on port 0 with its log read, tokens issued by the CLI, and a
//! server stopped with SIGTERM or killed when a test drops it.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

use serde_json::Value;

use crate::helpers::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_maestro");

pub fn maestro(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("MAESTRO_DATABASE_URL")
        .output()
        .unwrap()
}

/// A temporary directory holding a new database (made by `maestro migrate`, as only `serve` and
/// `migrate` make one), the working directory of the commands a test runs.
pub fn migrated_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let output = maestro(dir.path(), &["migrate"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir
}

/// The server's log lines, complete once the server has exited.
pub type Log = std::thread::JoinHandle<Vec<String>>;

/// Starts `maestro serve` on port 0 in `dir` and reads the bound address from its log; the rest
/// of the log is collected.
pub(crate) fn start_server(dir: &Path) -> (Child, String, Log) {
    start_server_with(dir, &[])
}

/// Starts the server with `env` added to the test's environment; it stops at once on SIGTERM
/// (no drain delay) unless `env` says otherwise.
pub(crate) fn start_server_with(dir: &Path, env: &[(&str, &str)]) -> (Child, String, Log) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env_remove("MAESTRO_DATABASE_URL")
        .env("MAESTRO_DRAIN_DELAY", "0s")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .unwrap();
        let entry: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if entry["message"] == "listening" {
            break entry["addr"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining the log so that the server never blocks on a full pipe.
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect());
    (child, format!("http://{addr}"), log)
}

pub fn issue_token(dir: &Path) -> String {
    let output = maestro(
        dir,
        &[&["token", "issue"][..], &GROUNDSPAN_WRITE_TOKEN].concat(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "token issue prints the token and nothing else: {stdout:?}"
    );
    assert_eq!(lines[0].split('.').count(), 3, "not a JWT: {}", lines[0]);
    lines[0].to_owned()
}

pub(crate) async fn post(client: &reqwest::Client, base: &str, token: &str, body: &Value) -> Value {
    let response = client
        .post(format!("{base}/maestro/v4/alerts"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A server process that is SIGKILLed when dropped (unless taken out first).
pub(crate) struct KillOnDrop(pub Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn stop_gracefully(mut server: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.wait().unwrap();
    assert!(exit.success(), "maestro exits cleanly on SIGTERM: {exit:?}");
}
