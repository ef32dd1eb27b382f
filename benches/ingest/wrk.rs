//! `--wrk`: the POST phase again, driven by wrk (Debian's package), a load generator of another
//! make, against the same server and database — so that a preloaded database gets an
//! independent view beside the harness's own (`benches/wrk/run.sh` starts from an empty one).
//! The requests are those of `benches/wrk/alerts.lua`: the seed alert, a distinct extRef each.
//! wrk's own CPU is not counted (it is a child that has exited by then).

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use anyhow::Context;

use super::{Phase, Target, Usage, postgres_cpu_seconds};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/wrk/alerts.lua");

/// Runs wrk with `threads` threads and `connections` connections for `duration`.
pub fn measure(
    target: &Target,
    threads: usize,
    connections: usize,
    duration: Duration,
    dir: &Path,
) -> anyhow::Result<Phase> {
    let body = dir.join("wrk-body.json");
    std::fs::write(&body, target.template.replace("__AMOUNT__", "450.5"))?;
    let server_before = Usage::of(&target.server_pid);
    let database_before = target.postgres.then(postgres_cpu_seconds);
    let output = Command::new("wrk")
        .arg(format!("-t{}", threads.max(1)))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .args(["--latency", "-s", SCRIPT])
        .arg(format!("http://{}", target.addr))
        .env("TOKEN", &target.token)
        .env("BODY", &body)
        .output()
        .context("running wrk (Debian's package wrk)")?;
    let server_after = Usage::of(&target.server_pid);
    let database_after = target.postgres.then(postgres_cpu_seconds);
    let text = String::from_utf8(output.stdout)?;
    anyhow::ensure!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests: f64 = number_before(&text, " requests in")?;
    let errors: f64 = number_after(&text, "non-2xx or socket errors:")?;
    let per_second: f64 = number_after(&text, "Requests/sec:")?;
    let per_request = |before: f64, after: f64| (after - before) * 1e6 / requests.max(1.0);
    let mut errors_by_status = BTreeMap::new();
    if errors > 0.0 {
        // wrk tells how many failed, not with which status: 0 stands for any.
        errors_by_status.insert(0, errors as u64);
    }
    Ok(Phase {
        requests: requests as u64,
        ok_per_second: per_second * (requests - errors) / requests.max(1.0),
        p50_ms: number_after(&text, "p50")?,
        p99_ms: number_after(&text, "p99")?,
        max_ms: number_after(&text, "max")?,
        errors_by_status,
        server_cpu_us_per_request: per_request(server_before.cpu_seconds, server_after.cpu_seconds),
        client_cpu_us_per_request: f64::NAN,
        database_cpu_us_per_request: match (database_before, database_after) {
            (Some(before), Some(after)) => per_request(before, after),
            _ => 0.0,
        },
        server_disk_kb_per_request: (server_after.disk_bytes - server_before.disk_bytes)
            / requests.max(1.0)
            / 1e3,
    })
}

/// The number that follows `label` on the first line holding it (alerts.lua's "p50 1.23 ms").
fn number_after(text: &str, label: &str) -> anyhow::Result<f64> {
    text.lines()
        .find_map(|line| {
            let rest = &line[line.find(label)? + label.len()..];
            rest.split(|c: char| c.is_whitespace() || c == ',')
                .find(|word| !word.is_empty())?
                .parse()
                .ok()
        })
        .with_context(|| format!("no \"{label}\" figure in wrk's output: {text}"))
}

/// The number that ends the text before `label` on its line ("123456 requests in 10.0s").
fn number_before(text: &str, label: &str) -> anyhow::Result<f64> {
    text.lines()
        .find_map(|line| {
            line[..line.find(label)?]
                .split_whitespace()
                .last()?
                .parse()
                .ok()
        })
        .with_context(|| format!("no \"{label}\" figure in wrk's output: {text}"))
}
