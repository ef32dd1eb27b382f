//! The partner guide's harness: the real binary started with Groundspan's credentials made by
//! the operator, a company connected for each run, the examples run as child processes with
//! their output read line by line, and a receiver of company notifications run beside them.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    app_center_helpers::ADMIN_USER,
    helpers::*,
    real_binary::{maestro, start_server_with},
};

/// How long an example may take for its whole flow (two busy cores, a debug server).
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// How long a receiver may take to start, or a notification to reach it.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Whether a probe runs and exits 0.
pub(crate) fn succeeds(probe: &mut Command) -> bool {
    probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether `what` can run here (`found`). If not, the test fails under CI (`CI=true`) and is
/// skipped, loudly, elsewhere.
pub(crate) fn available(what: &str, found: bool, missing: &str) -> bool {
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{what}: {missing}; .ci/run installs it (CI=true)");
        }
        // Straight to the terminal: the test harness would swallow an eprintln! of a pass.
        let _ = writeln!(std::io::stderr(), "SKIPPED: {what}; {missing}.");
    }
    found
}

/// The server, with Groundspan's client credentials made by the operator.
pub(crate) struct Guide {
    dir: PathBuf,
    base: String,
    client_secret: String,
    client: reqwest::Client,
    _server: Running,
}

impl Guide {
    pub(crate) async fn start(dir: &Path) -> Guide {
        let credentials = maestro(dir, &["partner", "credentials", GROUNDSPAN]);
        assert!(credentials.status.success(), "{credentials:?}");
        let credentials: Value = serde_json::from_slice(&credentials.stdout).unwrap();
        let (server, base, _log) =
            start_server_with(dir, &[("MAESTRO_DELIVERY_ALLOWED_SUBNETS", "127.0.0.0/8")]);
        Guide {
            dir: dir.to_owned(),
            base,
            client_secret: credentials["client_secret"].as_str().unwrap().to_owned(),
            client: http_client(),
            _server: Running::adopt(server),
        }
    }

    /// A token the operator's tool signs.
    fn issue(&self, args: &[&str]) -> String {
        let output = maestro(&self.dir, &[&["token", "issue"], args].concat());
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// A company administrator connects Groundspan: the request token its redirect URI gets.
    async fn request_token(&self) -> String {
        let admin = self.issue(&[
            "--type",
            "user",
            "--subject",
            ADMIN_USER,
            "--company",
            COMPANY,
            "--role",
            "CompanyAdministrator",
        ]);
        let response = self
            .client
            .post(format!("{}/app-mgmt/v0/connections", self.base))
            .bearer_auth(admin)
            .json(&json!({ "appId": GROUNDSPAN }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let connected: Value = response.json().await.unwrap();
        connected["requestToken"].as_str().unwrap().to_owned()
    }

    /// Runs an example's alert flow, as the guide tells a partner to, to its end.
    pub(crate) async fn run_flow(&self, mut example: Command) -> Flow {
        example
            .env("MAESTRO_URL", &self.base)
            .env("MAESTRO_CLIENT_ID", GROUNDSPAN)
            .env("MAESTRO_CLIENT_SECRET", &self.client_secret)
            .env("MAESTRO_COMPANY_ID", COMPANY)
            .env("MAESTRO_USER_ID", ADMIN_USER)
            .env("MAESTRO_REQUEST_TOKEN", self.request_token().await);
        let mut running = Running::spawn(&mut example);
        let status = running.finish(RUN_LIMIT);
        assert!(status.success(), "{status}: {}", running.transcript());
        let created = running
            .out
            .iter()
            .find_map(|line| line.strip_prefix("created "))
            .unwrap_or_else(|| panic!("no alert created: {}", running.transcript()))
            .to_owned();
        assert!(created.starts_with("alt_"), "{}", running.transcript());
        Flow {
            alert_id: created,
            out: running.out.clone(),
            transcript: running.transcript(),
        }
    }

    /// The alert the example created is withdrawn on the server: a repeat says so.
    pub(crate) async fn assert_withdrawn(&self, flow: &Flow) {
        let token = self.issue(&GROUNDSPAN_WRITE_TOKEN);
        let response = self
            .client
            .delete(format!("{}/maestro/v4/alerts/{}", self.base, flow.alert_id))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["message"], "Alert already withdrawn", "{answer}");
    }

    /// A company administrator subscribes the receiver's partner to itinerary events, one is
    /// published, and the receiver verifies it; replayed, it is recognised as a duplicate.
    pub(crate) async fn notify(&self, receiver: &mut PostbackReceiver) {
        let admin = self.issue(&[
            "--type",
            "user",
            "--subject",
            ADMIN_USER,
            "--app",
            &receiver.partner,
            "--company",
            COMPANY,
            "--role",
            "CompanyAdministrator",
        ]);
        let subscribed = self
            .client
            .post(format!(
                "{}/api/company/v1.0/subscribe?type=itinerary",
                self.base
            ))
            .header("Authorization", format!("OAuth {admin}"))
            .send()
            .await
            .unwrap();
        assert_eq!(subscribed.status(), 200);

        let event = self.dir.join("event.json");
        let trip = format!("T-{}", receiver.partner);
        std::fs::write(
            &event,
            json!({
                "type": "itinerary", "eventType": "CREATE", "companyId": COMPANY,
                "userLogin": "cm@example.com", "tripId": trip,
                "occurredAt": "2026-11-24T08:00:00Z", "object": {"TripName": "Paris"},
            })
            .to_string(),
        )
        .unwrap();
        let published = maestro(&self.dir, &["event", "publish", event.to_str().unwrap()]);
        assert!(
            String::from_utf8_lossy(&published.stdout).contains("\t1 deliveries"),
            "{published:?}"
        );

        let object_uri = format!("/api/travel/trip/v1.1/{trip}");
        let verified = receiver
            .process
            .wait_for("the verified notification", WAIT_LIMIT, |line| {
                line.starts_with("verified msg_")
                    && line.contains(": ITINERARY CREATE http")
                    && line.ends_with(&object_uri)
            });
        let id = verified["verified ".len()..]
            .split(':')
            .next()
            .unwrap()
            .to_owned();

        // The operator sends it again (same webhook-id) once its first delivery is recorded.
        let ops = self.issue(&[
            "--type",
            "app",
            "--subject",
            "ops",
            "--scope",
            "maestro.admin",
        ]);
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let replay = self
                .client
                .post(format!("{}/admin/v1/deliveries/{id}/replay", self.base))
                .bearer_auth(&ops)
                .send()
                .await
                .unwrap();
            match replay.status().as_u16() {
                202 => break,
                // Still pending: the worker has not recorded the receiver's answer yet.
                409 if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                status => panic!("replay: {status} {}", replay.text().await.unwrap()),
            }
        }
        receiver
            .process
            .wait_for("the duplicate", WAIT_LIMIT, |line| {
                line == format!("duplicate {id}")
            });
        assert!(
            !receiver
                .process
                .out
                .iter()
                .any(|l| l.starts_with("refused")),
            "{}",
            receiver.process.transcript()
        );
    }
}

/// What an example's flow printed.
pub(crate) struct Flow {
    alert_id: String,
    out: Vec<String>,
    transcript: String,
}

/// Each line (`{alertId}` standing for the created alert) was printed, and the rest of the flow:
/// the token refreshed, the identical retry, the deliberate error's two problems, the withdrawal.
pub(crate) fn assert_lines(flow: &Flow, expected: &[&str]) {
    let common = [
        "created {alertId}",
        "retried {alertId}: Alert already received (identical retry)",
        "error SCHEMA_VIOLATION at /metadata/packages/0/variants/0/price/amount: \"cheap\" is not of type \"number\"",
        "error URL_NOT_ALLOWED at /metadata/partnerLogoUrl: Links and images must be https URLs on the partner's allowed domains.",
        "withdrawn {alertId}",
    ];
    for line in common.iter().chain(expected) {
        let line = line.replace("{alertId}", &flow.alert_id);
        assert!(
            flow.out.contains(&line),
            "expected {line:?} in: {}",
            flow.transcript
        );
    }
    assert!(
        flow.out.iter().any(|l| l.starts_with("refreshed: ")),
        "{}",
        flow.transcript
    );
}

/// An example's receiver mode, listening on a port of its own, for a partner (a copy of
/// `examples/partners/acme`) whose `postback_url` points at it.
pub(crate) struct PostbackReceiver {
    partner: String,
    process: Running,
}

impl PostbackReceiver {
    /// Imported first (its postback secret is made then), the partner's receiver started with
    /// that secret on port 0, and the partner imported again with the port it got: the secret
    /// stays. Done before the server starts, so that it knows the partner from the outset.
    pub(crate) fn start(dir: &Path, partner: &str, mut example: Command) -> PostbackReceiver {
        let import = |port: u16| {
            let acme = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/partners/acme/partner.toml"),
            )
            .unwrap();
            let toml = acme
                .replacen("id = \"acme\"", &format!("id = \"{partner}\""), 1)
                .replacen(
                    "postback_url = \"http://127.0.0.1:9000/hook\"",
                    &format!("postback_url = \"http://127.0.0.1:{port}/hook\""),
                    1,
                );
            assert!(toml.contains(&format!(":{port}/hook")) && toml.contains(partner));
            let partner_dir = dir.join(partner);
            std::fs::create_dir_all(&partner_dir).unwrap();
            std::fs::write(partner_dir.join("partner.toml"), toml).unwrap();
            let output = maestro(dir, &["partner", "import", partner_dir.to_str().unwrap()]);
            assert!(output.status.success(), "{output:?}");
        };
        import(9);
        let secret = maestro(dir, &["partner", "show", partner, "--secret"]);
        assert!(secret.status.success(), "{secret:?}");
        let secret = String::from_utf8(secret.stdout).unwrap().trim().to_owned();
        example
            .args(["receive", "0"])
            .env("MAESTRO_WEBHOOK_SECRET", secret);
        let mut process = Running::spawn(&mut example);
        let listening = process.wait_for("the receiver listening", WAIT_LIMIT, |line| {
            line.starts_with("listening on http://127.0.0.1:")
        });
        let port = listening.rsplit(':').next().unwrap().parse().unwrap();
        import(port);
        PostbackReceiver {
            partner: partner.to_owned(),
            process,
        }
    }
}

/// A child process, killed when dropped, whose output lines arrive as it prints them.
struct Running {
    child: Child,
    /// Lines from stdout (`false`) and stderr (`true`); closed once both pipes are.
    lines: Option<mpsc::Receiver<(bool, String)>>,
    out: Vec<String>,
    err: Vec<String>,
}

impl Running {
    fn spawn(command: &mut Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("{command:?}: {err}"));
        let (send, lines) = mpsc::channel();
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for (is_err, pipe) in [(false, stdout), (true, stderr)] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if send.send((is_err, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Running {
            child,
            lines: Some(lines),
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    /// A process whose output is read elsewhere (the server).
    fn adopt(child: Child) -> Running {
        Running {
            child,
            lines: None,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    /// The next line; `None` once the process closed its output; a panic past `deadline`.
    fn next(&mut self, what: &str, deadline: Instant) -> Option<(bool, String)> {
        let lines = self.lines.as_ref()?;
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((is_err, line)) => {
                if is_err { &mut self.err } else { &mut self.out }.push(line.clone());
                Some((is_err, line))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.lines = None;
                None
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{what}: not within the time allowed; {}", self.transcript())
            }
        }
    }

    /// Reads stdout until a line satisfies `wanted`, and returns it.
    fn wait_for(&mut self, what: &str, limit: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            match self.next(what, deadline) {
                Some((false, line)) if wanted(&line) => return line,
                Some(_) => {}
                None => panic!("{what}: the process ended first; {}", self.transcript()),
            }
        }
    }

    /// Reads everything until the process closes its output, and its exit status.
    fn finish(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        while self.next("the end of the run", deadline).is_some() {}
        self.child.wait().unwrap()
    }

    fn transcript(&self) -> String {
        format!(
            "\n--- stdout\n{}\n--- stderr\n{}",
            self.out.join("\n"),
            self.err.join("\n")
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
