//! What the delivery benchmark stands on: a fresh database, the server process, the partner
//! pointed at the receiver, its subscription, tokens, and the server's CPU time.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

use serde_json::Value;
use sqlx::{Connection, Executor};

pub const COMPANY: &str = "b7d12989-0489-471a-81cd-175f8b78afa5";
const ADMIN: &str = "5e1c1b4a-93a4-4c4e-9d43-1f1d0b7e0a11";
pub const PARTNER: &str = "benchpartner";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub struct Database {
    pub url: String,
    admin: Option<(String, String)>,
}

impl Database {
    pub async fn create(postgres: Option<&str>, dir: &Path) -> anyhow::Result<Database> {
        let Some(server) = postgres else {
            return Ok(Database {
                url: format!("sqlite://{}", dir.join("bench.db").display()),
                admin: None,
            });
        };
        let name = format!("maestro_deliver_bench_{}", std::process::id());
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

/// Runs the CLI of `binary` against the database; its standard output, trimmed.
pub struct Cli<'a> {
    pub binary: &'a str,
    pub url: &'a str,
    pub master_key: &'a str,
}

impl Cli<'_> {
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(self.binary)
            .args(args)
            .args(["--database-url", self.url])
            .env("MAESTRO_MASTER_KEY", self.master_key)
            .output()?;
        anyhow::ensure!(output.status.success(), "{args:?} failed: {output:?}");
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    }

    /// Migrates, and registers the partner with the receiver as its postback URL.
    pub fn prepare(&self, dir: &Path, receiver: &str) -> anyhow::Result<()> {
        self.run(&["migrate"])?;
        let partner = dir.join(PARTNER);
        let template = partner.join("templates/NOTIFY_TEMPLATE_ID");
        std::fs::create_dir_all(&template)?;
        let bundled = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("partners/groundspan/templates/NOTIFY_TEMPLATE_ID");
        for entry in std::fs::read_dir(bundled)? {
            let entry = entry?;
            std::fs::copy(entry.path(), template.join(entry.file_name()))?;
        }
        std::fs::write(
            partner.join("partner.toml"),
            format!(
                "id = \"{PARTNER}\"\nname = \"Bench\"\nallowed_url_domains = [\"groundspan.com\", \"concur.com\"]\n\
                 postback_url = \"http://{receiver}/postback\"\npostback_secret = \"{SECRET}\"\n"
            ),
        )?;
        self.run(&["partner", "import", partner.to_str().expect("a UTF-8 path")])?;
        Ok(())
    }

    /// A company administrator's token in the partner's application (to subscribe).
    pub fn admin_token(&self) -> anyhow::Result<String> {
        self.run(&[
            "token",
            "issue",
            "--type",
            "user",
            "--subject",
            ADMIN,
            "--app",
            PARTNER,
            "--company",
            COMPANY,
            "--role",
            "CompanyAdministrator",
            "--ttl",
            "86400",
        ])
    }

    /// An internal producer's token (to publish events).
    pub fn producer_token(&self) -> anyhow::Result<String> {
        self.run(&[
            "token",
            "issue",
            "--type",
            "app",
            "--subject",
            "bench-producer",
            "--app",
            "bench-producer",
            "--scope",
            "maestro.events.publish",
            "--ttl",
            "86400",
        ])
    }
}

pub struct Server {
    child: Child,
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
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", url])
            .env("MAESTRO_MASTER_KEY", master_key)
            .env("MAESTRO_DRAIN_DELAY", "0s")
            .env("MAESTRO_DELIVERY_ALLOWED_SUBNETS", "127.0.0.0/8")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let addr = loop {
            let line = lines
                .next()
                .ok_or_else(|| anyhow::anyhow!("server exited"))??;
            let entry: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if entry["message"] == "listening" {
                break entry["addr"].as_str().unwrap_or_default().to_owned();
            }
        };
        std::thread::spawn(move || {
            use std::io::Write;
            let mut log = std::io::BufWriter::new(log);
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
            }
        });
        Ok(Server { child, addr })
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    pub fn stop(&mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: &str) -> f64 {
    let ticks = 100.0; // USER_HZ, which Linux fixes at 100 for /proc
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .unwrap_or(f64::NAN)
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
