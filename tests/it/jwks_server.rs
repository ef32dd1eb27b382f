//! A throwaway identity provider for the issuer tests: it serves a JWKS document over HTTPS,
//! with the certificate of `tests/fixtures/tls` (the server under test is given that
//! authority through `MAESTRO_TRUSTED_JWKS_CA`), answers what the test last published, and
//! counts the requests it answered.

use std::{
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use http_body_util::Full;
use hyper::{Request, Response, body::Bytes, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_rustls::TlsAcceptor;

use crate::helpers::{fixture, fixture_path};

/// The fixture issuer's key of type `kty` (RSA, EC, OKP), published under `kid`.
pub fn published_key(kty: &str, kid: &str) -> Value {
    let fixture: Value = serde_json::from_str(&fixture("keys/trusted_jwks.json")).unwrap();
    let mut key = fixture["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kty"] == kty)
        .unwrap()
        .clone();
    key["kid"] = json!(kid);
    key
}

/// A JWKS file holding `keys`.
pub fn jwks_file(keys: &[Value]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(json!({ "keys": keys }).to_string().as_bytes())
        .unwrap();
    file
}

/// What the server answers.
#[derive(Clone)]
struct Answer {
    status: u16,
    cache_control: Option<String>,
    body: String,
}

#[derive(Default)]
struct Shared {
    answer: Mutex<Option<Answer>>,
    requests: AtomicUsize,
}

pub struct JwksServer {
    /// The document's URL.
    pub url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl JwksServer {
    /// Serves `{"keys": keys}` at `https://127.0.0.1:PORT/jwks`.
    pub async fn start(keys: &[Value]) -> JwksServer {
        maestro::tls::install_crypto_provider();
        let certificates = CertificateDer::pem_file_iter(fixture_path("tls/server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(fixture_path("tls/server.key.pem")).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certificates, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/jwks", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, shared) = (acceptor.clone(), serving.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |request| answer(shared.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let server = JwksServer { url, shared, task };
        server.publish(keys);
        server
    }

    /// From now on, answers `{"keys": keys}`.
    pub fn publish(&self, keys: &[Value]) {
        self.answer(Answer {
            status: 200,
            cache_control: None,
            body: json!({ "keys": keys }).to_string(),
        });
    }

    /// From now on, answers `{"keys": keys}` with this `Cache-Control`.
    pub fn publish_with_cache_control(&self, keys: &[Value], cache_control: &str) {
        self.answer(Answer {
            status: 200,
            cache_control: Some(cache_control.to_owned()),
            body: json!({ "keys": keys }).to_string(),
        });
    }

    /// From now on, answers `status` with `body`.
    pub fn fail_with(&self, status: u16, body: &str) {
        self.answer(Answer {
            status,
            cache_control: None,
            body: body.to_owned(),
        });
    }

    /// How many requests it answered.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    fn answer(&self, answer: Answer) {
        *self.shared.answer.lock().unwrap() = Some(answer);
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let answer = shared.answer.lock().unwrap().clone().unwrap();
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let mut response = Response::builder()
        .status(if request.uri().path() == "/jwks" {
            answer.status
        } else {
            404
        })
        .header("Content-Type", "application/json");
    if let Some(cache_control) = answer.cache_control {
        response = response.header("Cache-Control", cache_control);
    }
    Ok(response.body(Full::new(Bytes::from(answer.body))).unwrap())
}
