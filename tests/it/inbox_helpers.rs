//! Test helpers for the user inbox: user tokens, the inbox API, sign-in links, the live stream,
//! and golden files.

use std::time::Duration;

use maestro::auth::{TokenKind, signing::TokenRequest};
use reqwest::Response;
use serde_json::Value;

use crate::helpers::*;

/// The user of the seed payloads (their `userId`).
pub const SEED_USER: &str = "b7d12989-0489-471a-81cd-175f8b78afa5";
pub const INBOX: &str = "maestro.inbox.readwrite";

impl TestApp {
    /// A user token of `company` with the given scopes.
    pub fn user_token_with(&self, user: &str, company: &str, scopes: &[&str]) -> String {
        self.token(TokenRequest {
            kind: TokenKind::User,
            subject: user.to_owned(),
            app_id: None,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            company: Some(company.to_owned()),
            roles: vec![],
            ttl_secs: 600,
        })
    }

    /// The inbox token of the seed payloads' user.
    pub fn seed_user_token(&self) -> String {
        self.user_token_with(SEED_USER, COMPANY, &[INBOX])
    }

    /// `GET /maestro/v4/inbox{query}` with `token`.
    pub async fn inbox(&self, token: &str, query: &str) -> Response {
        self.client
            .get(self.url(&format!("/maestro/v4/inbox{query}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The inbox page's JSON, asserting a 200.
    pub async fn inbox_json(&self, token: &str, query: &str) -> Value {
        let response = self.inbox(token, query).await;
        assert_eq!(response.status(), 200, "GET inbox{query}");
        response.json().await.unwrap()
    }

    /// `POST /maestro/v4/inbox/{id}/{action}` with `token`.
    pub async fn mark(&self, token: &str, alert_id: &str, action: &str) -> Response {
        self.client
            .post(self.url(&format!("/maestro/v4/inbox/{alert_id}/{action}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// A sign-in link of the seed user, as `maestro inbox open-url` prints it.
    pub async fn sign_in_link(&self, user: &str, company: &str) -> String {
        maestro::inbox::login::sign_in_link(
            &self.app.store,
            &self.app.keyring,
            &self.base,
            user,
            company,
            Duration::from_secs(300),
        )
        .await
        .unwrap()
    }

    /// Opens a sign-in link and returns the session cookie (`name=value`) it set.
    pub async fn sign_in(&self, user: &str, company: &str) -> String {
        let response = self
            .client
            .get(self.sign_in_link(user, company).await)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
        set_cookie.split(';').next().unwrap().to_owned()
    }

    /// Opens the live stream with `token` and reads its first event (`ready`).
    pub async fn stream(&self, token: &str) -> EventStream {
        let (stream, name, data) = self.stream_from(token, None).await;
        assert_eq!(name, "ready", "{data}");
        assert_eq!(data["resumed"], false, "{data}");
        stream
    }

    /// Opens the live stream with `token`, resuming after `last_event_id` when given (the
    /// `Last-Event-ID` header), and reads its first event.
    pub async fn stream_from(
        &self,
        token: &str,
        last_event_id: Option<&str>,
    ) -> (EventStream, String, Value) {
        let mut request = self
            .client
            .get(self.url("/maestro/v4/inbox/stream"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut stream = EventStream {
            response,
            buffer: String::new(),
            last_id: None,
        };
        let (name, data) = stream.next().await;
        (stream, name, data)
    }
}

/// A Server-Sent Events response, read event by event.
pub struct EventStream {
    response: Response,
    buffer: String,
    /// The `id:` of the last event read (what a browser would send as `Last-Event-ID`).
    pub last_id: Option<String>,
}

impl EventStream {
    /// The next event (name, JSON data). Fails the test if none comes within 10 s: the event is
    /// due at once, so the bound only keeps a broken build from hanging.
    pub async fn next(&mut self) -> (String, Value) {
        tokio::time::timeout(Duration::from_secs(10), self.read())
            .await
            .expect("an event within 10 s")
    }

    /// True when the server has ended the stream (after any events still buffered).
    pub async fn ended(&mut self) -> bool {
        let rest = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(chunk) = self.response.chunk().await.ok()? {
                self.buffer.push_str(std::str::from_utf8(&chunk).ok()?);
            }
            Some(())
        })
        .await;
        matches!(rest, Ok(Some(())))
    }

    async fn read(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut name, mut data) = (String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    } else if let Some(value) = line.strip_prefix("id:") {
                        self.last_id = Some(value.trim().to_owned());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return (name, serde_json::from_str(&data).unwrap());
            }
            let chunk = self
                .response
                .chunk()
                .await
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// Compares `actual` with the golden file `tests/fixtures/{name}`; with
/// `MAESTRO_UPDATE_GOLDENS=1` writes it instead.
pub fn assert_golden(name: &str, actual: &str) {
    let path = fixture_path(name);
    if std::env::var("MAESTRO_UPDATE_GOLDENS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("no golden {name}; run with MAESTRO_UPDATE_GOLDENS=1 to write it")
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from the rendering (first at line {}); rerun with \
             MAESTRO_UPDATE_GOLDENS=1 to accept it.\n--- rendered ---\n{actual}",
            line + 1
        );
    }
}
