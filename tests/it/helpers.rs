//! The test harness: the real app on a port-0 listener with a fresh database per test, tokens,
//! and the seed payloads with fresh dates.

use std::{path::PathBuf, sync::Arc};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use maestro::{
    App, Settings,
    auth::{TokenKind, signing::TokenRequest},
    partners::bundle,
};
use reqwest::{Client, Response};
use serde_json::{Value, json};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// The company of the seed payloads.
pub const COMPANY: &str = "b7d12989-0489-471a-81cd-175f8b78afa5";
pub const OTHER_COMPANY: &str = "0f6a1d53-3c2a-4b8e-9f3e-2a8c6d1e7b40";
pub const GROUNDSPAN: &str = "groundspan";
pub const WRITE: &str = "maestro.alerts.writeonly";

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture exists")
}

pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

/// A seed payload (`groundspan_post.json` or `groundspan_put.json`) dated now, with its own extRef.
pub fn seed(name: &str) -> Value {
    let mut body: Value = serde_json::from_str(&fixture(name)).unwrap();
    let now = OffsetDateTime::now_utc();
    body["createdAt"] = json!(rfc3339(now - Duration::minutes(1)));
    body["expiresAt"] = json!(rfc3339(now + Duration::days(30)));
    body["extRef"] = json!(uuid::Uuid::new_v4().to_string());
    body
}

pub fn post_seed() -> Value {
    seed("groundspan_post.json")
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub app: Arc<App>,
    pub dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("maestro.db").display());
        TestApp::spawn_on(dir, &url, configure).await
    }

    /// Spawns on an existing directory and database URL (to restart on the same data).
    pub async fn spawn_on(
        dir: TempDir,
        database_url: &str,
        configure: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut settings = Settings::with_database("127.0.0.1:0", database_url);
        settings.trusted_jwks = Some(fixture_path("keys/trusted_jwks.json"));
        configure(&mut settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = App::open(settings).await.unwrap();
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(maestro::serve(app.clone(), listener, async {
            let _ = rx.await;
        }));
        TestApp {
            base,
            client: Client::new(),
            app,
            dir,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn shutdown_signal(&mut self) -> oneshot::Sender<()> {
        self.shutdown.take().unwrap()
    }

    pub fn server_task(&mut self) -> JoinHandle<anyhow::Result<()>> {
        self.server.take().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A token signed by the server's own key.
    pub fn token(&self, request: TokenRequest) -> String {
        self.app
            .keyring
            .sign(&request.claims("http://test").unwrap())
            .unwrap()
    }

    /// The company token a partner uses to submit alerts.
    pub fn company_token(&self, company: &str, app: &str, scopes: &[&str]) -> String {
        self.token(TokenRequest {
            kind: TokenKind::Company,
            subject: company.to_owned(),
            app_id: Some(app.to_owned()),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            company: None,
            roles: vec![],
            ttl_secs: 600,
        })
    }

    pub fn groundspan_token(&self) -> String {
        self.company_token(COMPANY, GROUNDSPAN, &[WRITE])
    }

    pub async fn post_alert(&self, token: &str, body: &Value) -> Response {
        self.send_json(reqwest::Method::POST, "/maestro/v4/alerts", token, body)
            .await
    }

    pub async fn put_alert(&self, token: &str, alert_id: Option<&str>, body: &Value) -> Response {
        let path = match alert_id {
            Some(id) => format!("/maestro/v4/alerts/{id}"),
            None => "/maestro/v4/alerts".to_owned(),
        };
        self.send_json(reqwest::Method::PUT, &path, token, body)
            .await
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Response {
        self.client
            .request(method, self.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Registers another partner, a copy of Groundspan's template under a new id.
    pub async fn import_partner(&self, id: &str, extra_toml: &str) {
        let files = [
            (
                "partner.toml",
                format!(
                    "id = \"{id}\"\nname = \"{id}\"\nallowed_url_domains = [\"groundspan.com\", \"concur.com\"]\n{extra_toml}"
                ),
            ),
            (
                "templates/NOTIFY_TEMPLATE_ID/schema.json",
                std::fs::read_to_string(
                    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                        .join("partners/groundspan/templates/NOTIFY_TEMPLATE_ID/schema.json"),
                )
                .unwrap(),
            ),
        ]
        .into_iter()
        .map(|(path, text)| (PathBuf::from(path), text))
        .collect();
        let import = bundle::from_files(&files).unwrap();
        self.app.store.import_partner(&import).await.unwrap();
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Reads `{"errors": [...]}` into (code, field) pairs.
pub async fn error_list(response: Response) -> Vec<(String, Option<String>)> {
    let body: Value = response.json().await.unwrap();
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array in {body}"))
        .iter()
        .map(|e| {
            (
                e["errorCode"].as_str().unwrap().to_owned(),
                e["details"]["field"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Asserts the status and that the first error has `code`; returns the whole body.
pub async fn expect_error(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["errorCode"], code, "{body}");
    body
}

/// Claims for hand-made tokens (external issuers and attacks).
pub fn claims(company: &str, scopes: &[&str]) -> Value {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "sub": company,
        "concur.type": "company",
        "concur.scopes": scopes,
        "concur.appId": GROUNDSPAN,
        "iat": now,
        "exp": now + 600,
    })
}

/// A token signed with one of the fixture keys of the pretend external issuer.
pub fn external_token(alg: Algorithm, kid: &str, claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(fixture("keys/rsa.pem").as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(fixture("keys/ec.pem").as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(fixture("keys/ed25519.pem").as_bytes()),
        other => panic!("no fixture key for {other:?}"),
    }
    .unwrap();
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}
