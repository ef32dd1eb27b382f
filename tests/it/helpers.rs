//! The test harness: the real app on a port-0 listener with a fresh database per test, tokens,
//! and the seed payloads with fresh dates.

use std::{path::PathBuf, sync::Arc};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use maestro::{
    App, Settings,
    auth::{
        TokenKind,
        signing::{self, TokenRequest},
    },
    partners::bundle,
};
use reqwest::{Client, Response};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use crate::test_database::*;

/// The company of the seed payloads.
pub const COMPANY: &str = "b7d12989-0489-471a-81cd-175f8b78afa5";
pub const OTHER_COMPANY: &str = "0f6a1d53-3c2a-4b8e-9f3e-2a8c6d1e7b40";
pub const GROUNDSPAN: &str = "groundspan";
pub const WRITE: &str = "maestro.alerts.writeonly";
/// `maestro token issue`'s arguments for a Groundspan company token that writes alerts.
pub const GROUNDSPAN_WRITE_TOKEN: [&str; 8] = [
    "--type",
    "company",
    "--subject",
    COMPANY,
    "--app",
    GROUNDSPAN,
    "--scope",
    WRITE,
];

/// reqwest is built with rustls but without a crypto provider of its own (see src/tls.rs).
pub fn http_client() -> Client {
    maestro::tls::install_crypto_provider();
    Client::new()
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A `MAESTRO_TRUSTED_JWKS` entry, as the setting reads it.
pub fn trusted_source(entry: &str) -> maestro::auth::issuers::TrustedSource {
    entry.parse().unwrap()
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

/// Instantiates async test functions taking a [`Backend`] once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    if $crate::helpers::backend_available($crate::helpers::Backend::Postgres).await {
                        super::$test($crate::helpers::Backend::Postgres).await
                    }
                }
            )*
        }
    };
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub app: Arc<App>,
    pub db: Arc<TestDatabase>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let db = Arc::new(TestDatabase::new(backend).await);
        TestApp::spawn_on(db, configure).await
    }

    /// Spawns an instance on an existing test database (a second instance, or a restart).
    pub async fn spawn_on(db: Arc<TestDatabase>, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestApp::spawn_listening(db, listener, configure).await
    }

    /// Spawns an instance on `listener` (a restart at the address a browser knows).
    pub async fn spawn_listening(
        db: Arc<TestDatabase>,
        listener: TcpListener,
        configure: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut settings = Settings::with_database("127.0.0.1:0", &db.url);
        settings.database = db.database_args();
        let fixture_jwks = fixture_path("keys/trusted_jwks.json");
        settings.trusted_jwks = vec![trusted_source(&fixture_jwks.display().to_string())];
        // Tests drive the delivery worker one pass at a time; a test that wants the running
        // loop asks for `Role::All`.
        settings.role = maestro::config::Role::Api;
        // Tests that shut the app down watch the drain only when they ask for one.
        settings.drain_delay = std::time::Duration::ZERO;
        configure(&mut settings);
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = App::open(settings).await.unwrap();
        cover_test_tokens(&app).await;
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(maestro::serve(app.clone(), listener, async {
            let _ = rx.await;
        }));
        TestApp {
            base,
            client: http_client(),
            app,
            db,
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

    /// A token signed by the server's own key, without waiting: the key's recorded lifetime
    /// covers it (see [`cover_test_tokens`]). After a rotation, mint with [`TestApp::issue`].
    pub fn token(&self, request: TokenRequest) -> String {
        self.app
            .keyring
            .sign_recorded(&request.claims("http://test").unwrap())
            .unwrap()
            .expect("the signing key's recorded lifetime covers test tokens")
    }

    /// A token minted as maestro mints every token (`signing::issue`).
    pub async fn issue(&self, request: TokenRequest) -> String {
        signing::issue(
            &self.app.store,
            &self.app.keyring,
            &request.claims("http://test").unwrap(),
        )
        .await
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

    /// POSTs `body` as Groundspan, asserts the 200, and returns the new alert's id.
    pub async fn create_alert(&self, body: &Value) -> String {
        let response = self.post_alert(&self.groundspan_token(), body).await;
        assert_eq!(response.status(), 200);
        let receipt: Value = response.json().await.unwrap();
        receipt["alertId"].as_str().unwrap().to_owned()
    }

    /// POSTs `text` as an alert's JSON body exactly as given (for bodies a `Value` cannot hold).
    pub async fn post_alert_text(&self, token: &str, text: impl Into<String>) -> Response {
        self.send_text(reqwest::Method::POST, "/maestro/v4/alerts", token, text)
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
        self.send_text(method, path, token, body.to_string()).await
    }

    /// Sends `text` as an `application/json` body with the bearer `token`.
    pub async fn send_text(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        text: impl Into<String>,
    ) -> Response {
        self.client
            .request(method, self.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .body(text.into())
            .send()
            .await
            .unwrap()
    }

    /// Registers another partner, a copy of Groundspan's template under a new id.
    pub async fn import_partner(&self, id: &str, extra_toml: &str) {
        let schema = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("partners/groundspan/templates/NOTIFY_TEMPLATE_ID/schema.json"),
        )
        .unwrap();
        self.import_partner_with_schema(id, extra_toml, &schema)
            .await;
    }

    /// Registers (or re-imports) a partner whose one template has this metadata schema.
    pub async fn import_partner_with_schema(&self, id: &str, extra_toml: &str, schema: &str) {
        let files = [
            (
                "partner.toml",
                format!(
                    "id = \"{id}\"\nname = \"{id}\"\nallowed_url_domains = [\"groundspan.com\", \"concur.com\"]\n{extra_toml}"
                ),
            ),
            (
                "templates/NOTIFY_TEMPLATE_ID/schema.json",
                schema.to_owned(),
            ),
        ]
        .into_iter()
        .map(|(path, text)| (PathBuf::from(path), text))
        .collect();
        let import = bundle::from_files(&files).unwrap();
        self.app.store.import_partner(&import).await.unwrap();
    }

    /// GETs `path` and reads the JSON answer.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
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

/// Records that the signing key signs tokens of up to two days from now, as minting one does,
/// so that the harness can sign tokens without awaiting (`TestApp::token`).
async fn cover_test_tokens(app: &App) {
    let claims = TokenRequest {
        kind: TokenKind::App,
        subject: "harness".into(),
        app_id: None,
        scopes: vec![],
        company: None,
        roles: vec![],
        ttl_secs: 2 * 24 * 3600,
    }
    .claims("http://test")
    .unwrap();
    signing::issue(&app.store, &app.keyring, &claims)
        .await
        .unwrap();
}

/// Waits until the app's gauge `name` reads `n` (observing, not sleeping blindly); fails the
/// test if it does not within 10 s.
pub async fn until_gauge(t: &TestApp, name: &str, n: u32) {
    let wanted = format!("{name} {n}");
    let seen = async {
        while !t.metrics().await.lines().any(|l| l == wanted) {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), seen)
        .await
        .unwrap_or_else(|_| panic!("never saw {wanted}"));
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

/// A canonical-looking body for `body` whose `metadata` lies between other members (and after a
/// character of two bytes, so that offsets are bytes), with where that metadata lies: what the
/// alert service hands a store.
pub fn payload_with_metadata(body: &str) -> (String, maestro::store::PayloadMetadata) {
    use sha2::{Digest, Sha256};
    let metadata = format!("{{\"offer\":\"{body}\",\"n\":[1,2]}}");
    let payload = format!("{{\"body\":\"{body} \u{e9}\",\"metadata\":{metadata},\"z\":1}}");
    let start = payload
        .find(&metadata)
        .expect("the metadata is in the payload");
    let range = start..start + metadata.len();
    let digest = Sha256::digest(metadata.as_bytes()).into();
    (payload, maestro::store::PayloadMetadata { range, digest })
}
