//! The browser tests' harness: a headless Chromium of the test's own, driven over the DevTools
//! protocol (commands by id, events kept in arrival order), signed in to an inbox page, and the
//! axe-core audit.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

use crate::{helpers::*, inbox_helpers::*};

/// How long the browser may take to do what a step asks: generous, for two busy cores.
const STEP: Duration = Duration::from_secs(30);

/// A headless Chromium in `locale` and `time_zone`, signed in to `t`'s inbox page (loaded).
pub(crate) async fn signed_in_page(
    t: &TestApp,
    chromium: &Path,
    locale: &str,
    time_zone: &str,
) -> (Browser, Cdp, String) {
    let browser = Browser::launch(chromium);
    let mut cdp = Cdp::connect(&browser.endpoint).await;
    let target = cdp
        .call(None, "Target.createTarget", json!({"url": "about:blank"}))
        .await;
    let attached = cdp
        .call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        )
        .await;
    let page = attached["sessionId"].as_str().unwrap().to_owned();
    for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
        cdp.call(Some(&page), domain, json!({})).await;
    }
    cdp.call(
        Some(&page),
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1100, "height": 1400, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    cdp.call(
        Some(&page),
        "Emulation.setLocaleOverride",
        json!({"locale": locale}),
    )
    .await;
    cdp.call(
        Some(&page),
        "Emulation.setTimezoneOverride",
        json!({"timezoneId": time_zone}),
    )
    .await;
    // Sign in: the link sets the cookie and moves on to /inbox.
    cdp.call(
        Some(&page),
        "Page.navigate",
        json!({"url": t.sign_in_link(SEED_USER, COMPANY).await}),
    )
    .await;
    let inbox_url = t.url("/inbox");
    cdp.event(|event| {
        event["method"] == "Page.frameNavigated"
            && event["params"]["frame"]["url"] == inbox_url.as_str()
    })
    .await;
    (browser, cdp, page)
}

/// What axe-core (tests/browser, pinned; `npm ci --prefix tests/browser`) finds wrong with the
/// page: each violation's rule and the elements it names. Without the package the audit is
/// skipped with a message, and fails under CI.
pub(crate) async fn axe_violations(cdp: &mut Cdp, page: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser/node_modules/axe-core/axe.min.js");
    let Ok(axe) = std::fs::read_to_string(&path) else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "axe-core is not installed (CI=true); .ci/run runs npm ci --prefix tests/browser"
            );
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: the axe-core audit; run npm ci --prefix tests/browser"
        );
        return vec![];
    };
    // Evaluated through the DevTools protocol, which the page's CSP does not govern.
    cdp.evaluate(page, &format!("{axe}\n;true")).await;
    let found = cdp
        .evaluate(
            page,
            "axe.run(document).then((result) => result.violations.map((v) =>
               `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`))",
        )
        .await;
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Chromium from `CHROMIUM`, or `chromium` on the PATH.
pub(crate) fn find_chromium() -> Option<PathBuf> {
    let found = std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("Chromium is not installed (CI=true); .ci/run installs the chromium package");
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: the browser test; no chromium on the PATH (apt-get install chromium, or set CHROMIUM)."
        );
    }
    found
}

/// A headless Chromium of the test's own, ended with the test.
pub(crate) struct Browser {
    child: Child,
    endpoint: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub(crate) fn launch(chromium: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium)
            .args([
                "--headless",
                // Containers run tests as root, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--mute-audio",
                // Nothing leaves the machine: partner logos fail at once instead of timing out.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("Chromium starts");
        let stderr = child.stderr.take().unwrap();
        let (found, endpoint) = std::sync::mpsc::channel();
        // Chromium says where its DevTools endpoint is on stderr; the rest is drained.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = found.send(url.trim().to_owned());
                }
            }
        });
        let endpoint = endpoint
            .recv_timeout(Duration::from_secs(60))
            .expect("Chromium announces its DevTools endpoint");
        Browser {
            child,
            endpoint,
            _profile: profile,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools protocol client: commands by id, events kept in arrival order.
pub(crate) struct Cdp {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Events not yet asked for.
    pending: VecDeque<Value>,
    /// Every event received.
    pub(crate) seen: Vec<Value>,
}

impl Cdp {
    pub(crate) async fn connect(endpoint: &str) -> Cdp {
        let (socket, _) = tokio_tungstenite::connect_async(endpoint).await.unwrap();
        Cdp {
            socket,
            next_id: 0,
            pending: VecDeque::new(),
            seen: Vec::new(),
        }
    }

    pub(crate) async fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
        loop {
            let message = self.receive().await;
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    panic!("{method}: {error}");
                }
                return message["result"].clone();
            }
        }
    }

    /// The next message; events are also kept for `event` and `seen`.
    pub(crate) async fn receive(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(STEP, self.socket.next())
                .await
                .expect("Chromium answers")
                .expect("the DevTools connection stays open")
                .unwrap();
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value.get("method").is_some() {
                    self.pending.push_back(value.clone());
                    self.seen.push(value.clone());
                }
                return value;
            }
        }
    }

    /// The first event (received or to come) that `matches`.
    pub(crate) async fn event(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            if let Some(at) = self.pending.iter().position(&matches) {
                let event = self.pending.remove(at).unwrap();
                self.pending.drain(..at);
                return event;
            }
            self.receive().await;
        }
    }

    /// Evaluates `expression` in the page, awaiting it if it is a promise.
    pub(crate) async fn evaluate(&mut self, page: &str, expression: &str) -> Value {
        let result = self
            .call(
                Some(page),
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression}\nfailed in the page: {exception:#}");
        }
        result["result"]["value"].clone()
    }

    /// Waits, in the page, until `condition` holds; fails with what the page shows after
    /// [`STEP`].
    pub(crate) async fn wait_until(&mut self, page: &str, condition: &str) {
        let script = format!(
            "new Promise((resolve, reject) => {{
                const deadline = Date.now() + {ms};
                const check = () => {{
                    let held = false;
                    try {{ held = ({condition}); }} catch (e) {{}}
                    if (held) return resolve(true);
                    if (Date.now() > deadline) {{
                        return reject(new Error('still not so: ' + document.body.innerText.slice(0, 2000)));
                    }}
                    setTimeout(check, 50);
                }};
                check();
            }})",
            ms = STEP.as_millis()
        );
        assert_eq!(self.evaluate(page, &script).await, json!(true));
    }

    /// A left click in the middle of the element `selector` names.
    pub(crate) async fn click(&mut self, page: &str, selector: &str) {
        let at = self
            .evaluate(
                page,
                &format!(
                    "(() => {{ const e = document.querySelector({selector:?});
                       e.scrollIntoView({{block: 'center'}});
                       const r = e.getBoundingClientRect();
                       return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
                ),
            )
            .await;
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                Some(page),
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": at[0], "y": at[1], "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Saves a full-page screenshot as `target/test-artifacts/{name}`.
    pub(crate) async fn screenshot(&mut self, page: &str, name: &str) {
        let shot = self
            .call(
                Some(page),
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}
