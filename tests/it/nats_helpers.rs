//! NATS for the downstream tests: the machine's server (or `MAESTRO_TEST_NATS_URL`), a stream
//! and subject prefix of each test's own so that tests running at once never meet, reading a
//! stream back, and a `nats-server` of a test's own for the tests that stop it.

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use async_nats::jetstream::{self, stream::Stream};
use maestro::{Settings, config::Secret};
use serde_json::Value;

/// Where the machine's NATS server is; CI runs one on the default port.
pub fn nats_url() -> String {
    std::env::var("MAESTRO_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// Whether NATS is reachable. Under CI (`CI=true`) an unreachable server fails the test;
/// elsewhere the test is skipped, loudly, once per run.
pub async fn nats_available() -> bool {
    static AVAILABLE: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();
    *AVAILABLE
        .get_or_init(|| async {
            match connect(&nats_url()).await {
                Ok(_) => true,
                Err(err) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                    panic!("NATS at {} is unreachable under CI: {err}", nats_url())
                }
                Err(err) => {
                    use std::io::Write;
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIPPED: the NATS tests; NATS at {} is unreachable ({err}). Set \
                         MAESTRO_TEST_NATS_URL to run them.",
                        nats_url()
                    );
                    false
                }
            }
        })
        .await
}

async fn connect(url: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url)
        .await
}

/// A stream name and subject prefix of one test's own, on a NATS server.
pub struct TestStream {
    pub url: String,
    pub name: String,
    pub prefix: String,
    context: jetstream::Context,
}

impl TestStream {
    pub async fn new(url: &str) -> TestStream {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let client = connect(url).await.expect("NATS answers");
        TestStream {
            url: url.to_owned(),
            name: format!("MAESTRO_TEST_{unique}"),
            prefix: format!("t{unique}.maestro"),
            context: jetstream::new(client),
        }
    }

    /// Points an app's settings at this stream.
    pub fn configure(&self, settings: &mut Settings) {
        settings.nats.url = Some(Secret::new(self.url.clone()));
        settings.nats.stream = self.name.clone();
        settings.nats.subject_prefix = self.prefix.clone();
        settings.nats.timeout = Duration::from_secs(2);
    }

    /// The same for the real binary, as environment variables.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MAESTRO_NATS_URL", self.url.clone()),
            ("MAESTRO_NATS_STREAM", self.name.clone()),
            ("MAESTRO_NATS_SUBJECT_PREFIX", self.prefix.clone()),
            ("MAESTRO_NATS_TIMEOUT", "2s".to_owned()),
        ]
    }

    pub async fn stream(&self) -> Option<Stream> {
        self.context.get_stream(&self.name).await.ok()
    }

    /// Every message in the stream, in order: (subject, `Nats-Msg-Id`, body).
    pub async fn messages(&self) -> Vec<Received> {
        let Some(stream) = self.stream().await else {
            return Vec::new();
        };
        let state = stream.get_info().await.unwrap().state;
        let mut messages = Vec::new();
        for sequence in state.first_sequence..=state.last_sequence {
            if state.messages == 0 {
                break;
            }
            let message = stream.get_raw_message(sequence).await.unwrap();
            messages.push(Received {
                subject: message.subject.to_string(),
                msg_id: message
                    .headers
                    .get("Nats-Msg-Id")
                    .map(|v| v.as_str().to_owned()),
                body: serde_json::from_slice(&message.payload).unwrap(),
            });
        }
        messages
    }

    /// How many messages the stream holds (0 before it exists).
    pub async fn count(&self) -> u64 {
        match self.stream().await {
            Some(stream) => stream.get_info().await.unwrap().state.messages,
            None => 0,
        }
    }

    /// Waits until the stream holds `n` messages (fails the test after `within`).
    pub async fn until_count(&self, n: u64, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let count = self.count().await;
            if count >= n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the stream holds {count} messages, not {n}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for TestStream {
    /// Deletes the stream: tests share the machine's server. Drop runs outside async code, so
    /// on a thread of its own with a small runtime.
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(client) = connect(&url).await {
                    let _ = jetstream::new(client).delete_stream(&name).await;
                }
            });
        })
        .join();
    }
}

#[derive(Debug)]
pub struct Received {
    pub subject: String,
    pub msg_id: Option<String>,
    pub body: Value,
}

/// A `nats-server` with JetStream of a test's own, on its own port and store directory, so that
/// a test may stop it without touching the machine's. Killed when dropped.
pub struct OwnNatsServer {
    pub port: u16,
    child: Option<Child>,
}

/// The server binary (Debian's package puts it in /usr/sbin).
fn nats_server_binary() -> String {
    std::env::var("MAESTRO_TEST_NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".into())
}

impl OwnNatsServer {
    /// Whether a server can be started here: under CI its absence fails the test.
    pub fn available() -> bool {
        let found = Path::new(&nats_server_binary()).exists();
        if !found {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "{} is missing under CI",
                nats_server_binary()
            );
            eprintln!("SKIPPED: no {} to start", nats_server_binary());
        }
        found
    }

    pub async fn start(store_dir: &Path, port: Option<u16>) -> OwnNatsServer {
        let port = port.unwrap_or_else(|| {
            let probe = TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        });
        let child = Command::new(nats_server_binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let server = OwnNatsServer {
            port,
            child: Some(child),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while connect(&server.url()).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nats-server never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnNatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
