//! The inbox page in a real browser: headless Chromium, driven over the DevTools protocol.
//!
//! Signs in with a link as `maestro inbox open-url` prints it, sees the submitted Groundspan
//! alert's card, marks it read with a mouse click, watches a partner's update arrive live, and
//! keeps screenshots in `target/test-artifacts/`. Without Chromium the test is skipped (with a
//! message) on a workstation and fails under CI (`CI=true`); `.ci/run` installs it.

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

#[tokio::test]
async fn the_inbox_page_shows_a_card_marks_it_read_and_updates_live() {
    let Some(chromium) = find_chromium() else {
        return;
    };
    let t = TestApp::spawn(Backend::Sqlite).await;
    let body = post_seed();
    let response = t.post_alert(&t.groundspan_token(), &body).await;
    assert_eq!(response.status(), 200);

    let browser = Browser::launch(&chromium);
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
    let page = page.as_str();
    for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
        cdp.call(Some(page), domain, json!({})).await;
    }
    cdp.call(
        Some(page),
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1100, "height": 1400, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;

    // Sign in: the link sets the cookie and moves on to /inbox.
    cdp.call(
        Some(page),
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

    // The card, the badge, and the live stream connected.
    cdp.wait_until(
        page,
        "document.readyState === 'complete'
         && document.getElementById('live-status').textContent === 'Live'
         && document.getElementById('unread-badge').textContent === '1'
         && document.getElementById('unread-badge').getAttribute('aria-label') === '1 unread alert'
         && document.querySelector('li.alert').dataset.read === 'false'
         && document.querySelector('li.alert').getBoundingClientRect().height > 0
         && document.querySelector('.package__title').textContent === 'SFO to CDG  Aug 1'
         && document.querySelectorAll('.variant__action').length === 4",
    )
    .await;

    // Mark it read, with the mouse.
    cdp.click(page, "button[data-action=\"read\"]").await;
    cdp.wait_until(
        page,
        "document.querySelector('li.alert').dataset.read === 'true'
         && document.getElementById('unread-badge').textContent === '0'
         && document.getElementById('unread-badge').getAttribute('aria-label') === '0 unread alerts'
         && !document.querySelector('button[data-action=\"read\"]')",
    )
    .await;
    cdp.screenshot(page, "inbox.png").await;
    let inbox = t.inbox_json(&t.seed_user_token(), "").await;
    assert_eq!(inbox["items"][0]["read"], true, "the server has it read");

    // The partner updates the alert: the page shows it, unread again, without a reload.
    let mut update = body.clone();
    update["metadata"]["packages"][0]["variants"][0]["price"]["amount"] = json!(425.0);
    let response = t.put_alert(&t.groundspan_token(), None, &update).await;
    assert_eq!(response.status(), 200);
    cdp.wait_until(
        page,
        "document.querySelector('li.alert').dataset.read === 'false'
         && document.getElementById('unread-badge').textContent === '1'
         && document.querySelector('.variant__price').textContent === '425.00 USD'",
    )
    .await;
    cdp.screenshot(page, "inbox-updated.png").await;

    let complaints: Vec<&Value> = cdp
        .seen
        .iter()
        .filter(|event| {
            event["method"] == "Runtime.exceptionThrown"
                || (event["method"] == "Log.entryAdded"
                    && event["params"]["entry"]["text"]
                        .as_str()
                        .is_some_and(|text| text.contains("Content Security Policy")))
        })
        .collect();
    assert!(
        complaints.is_empty(),
        "script errors or CSP violations: {complaints:#?}"
    );
}

/// Chromium from `CHROMIUM`, or `chromium` on the PATH.
fn find_chromium() -> Option<PathBuf> {
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
struct Browser {
    child: Child,
    endpoint: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch(chromium: &Path) -> Browser {
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
struct Cdp {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Events not yet asked for.
    pending: VecDeque<Value>,
    /// Every event received.
    seen: Vec<Value>,
}

impl Cdp {
    async fn connect(endpoint: &str) -> Cdp {
        let (socket, _) = tokio_tungstenite::connect_async(endpoint).await.unwrap();
        Cdp {
            socket,
            next_id: 0,
            pending: VecDeque::new(),
            seen: Vec::new(),
        }
    }

    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
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
    async fn receive(&mut self) -> Value {
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
    async fn event(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
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
    async fn evaluate(&mut self, page: &str, expression: &str) -> Value {
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
    async fn wait_until(&mut self, page: &str, condition: &str) {
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
    async fn click(&mut self, page: &str, selector: &str) {
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
    async fn screenshot(&mut self, page: &str, name: &str) {
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
