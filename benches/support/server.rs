//! What the HTTP benchmarks share: a fresh database (a SQLite file, or a PostgreSQL database
//! created for the run and dropped after), the release server started on it, tokens issued by
//! its CLI, the process's CPU time, and lines naming the machine and its load.
// Each benchmark includes this file and uses part of it.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Seek, SeekFrom},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use sqlx::{Connection, Executor};

pub struct Database {
    pub url: String,
    admin: Option<(String, String)>,
}

impl Database {
    /// A SQLite file in `dir`, or with `postgres` (a server URL) a database of the run's own.
    pub async fn create(postgres: Option<&str>, dir: &Path) -> anyhow::Result<Database> {
        let Some(server) = postgres else {
            return Ok(Database {
                url: format!("sqlite://{}", dir.join("bench.db").display()),
                admin: None,
            });
        };
        let name = format!("maestro_bench_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(server).await?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        let (base, _) = server
            .rsplit_once('/')
            .expect("a postgres URL names a database");
        Ok(Database {
            url: format!("{base}/{name}"),
            admin: Some((server.to_owned(), name)),
        })
    }

    pub fn backend(&self) -> &'static str {
        if self.admin.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    pub async fn drop(self) -> anyhow::Result<()> {
        if let Some((server, name)) = self.admin {
            let mut admin = sqlx::PgConnection::connect(&server).await?;
            admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await?;
        }
        Ok(())
    }
}

/// The master key of the run: PostgreSQL requires one, and every command gets the same.
pub fn master_key() -> String {
    std::env::var("MAESTRO_MASTER_KEY")
        .unwrap_or_else(|_| maestro::store::secrets::MasterKey::generate().to_base64())
}

/// `maestro migrate` on the run's database.
pub fn migrate(binary: &str, url: &str, master_key: &str) -> anyhow::Result<()> {
    let output = Command::new(binary)
        .args(["migrate", "--database-url", url])
        .env("MAESTRO_MASTER_KEY", master_key)
        .output()?;
    anyhow::ensure!(output.status.success(), "migrate failed: {output:?}");
    Ok(())
}

/// A token printed by `maestro token issue ARGS`.
pub fn issue_token(
    binary: &str,
    url: &str,
    master_key: &str,
    args: &[&str],
) -> anyhow::Result<String> {
    let output = Command::new(binary)
        .args(["token", "issue"])
        .args(args)
        .args(["--database-url", url, "--ttl", "86400"])
        .env("MAESTRO_MASTER_KEY", master_key)
        .output()?;
    anyhow::ensure!(output.status.success(), "token issue failed: {output:?}");
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// The address the server at `child` announced in its log at `log` (after byte `start`).
fn listening_addr(child: &mut Child, log: &Path, start: u64) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut file = std::fs::File::open(log)?;
        file.seek(SeekFrom::Start(start))?;
        for line in BufReader::new(file).lines() {
            let entry: Value = serde_json::from_str(&line?).unwrap_or(Value::Null);
            if entry["message"] == "listening" {
                return Ok(entry["addr"].as_str().unwrap_or_default().to_owned());
            }
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "the server exited ({status}) before listening; see {}",
                log.display()
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the server did not listen within 60 s; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    pub fn start(
        binary: &str,
        url: &str,
        master_key: &str,
        log: &Path,
        env: &[(String, String)],
    ) -> anyhow::Result<Server> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let start = log_file.metadata()?.len();
        // The server logs (one line per request, as in production) straight into the file, so
        // that its log writer syncs it as it would in production: copied through a pipe by this
        // process, the lines stayed dirty until the kernel wrote 30 s of them at once, and the
        // commits' fsyncs queued behind that burst (docs/PERFORMANCE.md, "the catalogue loaded
        // once").
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", url])
            .env("MAESTRO_MASTER_KEY", master_key)
            // No load balancer to drain: stop at once (a variable, which older builds ignore).
            .env("MAESTRO_DRAIN_DELAY", "0s")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()?;
        let addr = match listening_addr(&mut child, log, start) {
            Ok(addr) => addr,
            Err(err) => {
                let _ = child.kill();
                return Err(err);
            }
        };
        Ok(Server { child, addr })
    }

    /// Current and peak resident set size, in MB.
    pub fn rss_mb(&self) -> anyhow::Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
                .unwrap_or(f64::NAN)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }

    pub fn stop(&mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

/// The machine's cores, processor and memory, for the report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cores} cores ({cpu}), {memory_gb:.0} GiB")
}

/// CPU time (user + system) a process has used so far, in seconds, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_cpu_seconds(&stat))
        .unwrap_or(f64::NAN)
}

/// User + system CPU seconds from the text of `/proc/<pid>/stat`.
pub fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    let ticks = 100.0; // USER_HZ, which Linux fixes at 100 for /proc
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// CPU seconds (user + system) used so far by the processes named `postgres`: the PostgreSQL
/// server's, when it runs on this machine (other clients of that server add to it).
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return f64::NAN;
    };
    entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| stat.contains("(postgres)"))
        .filter_map(|stat| stat_cpu_seconds(&stat))
        .sum()
}

/// The load average over 1, 5 and 15 minutes, as `/proc/loadavg` gives it.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
