//! Throwaway partner endpoints for delivery tests: a receiver that records every request it
//! receives and answers from a script (status, headers, body, optional delay), 200 once the
//! script runs out; and a silent endpoint that accepts connections and never answers.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use tokio::{net::TcpListener, sync::Notify, task::JoinHandle};

#[derive(Clone, Debug)]
pub struct Received {
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn webhook_id(&self) -> &str {
        self.header("webhook-id")
    }
}

#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Answer {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn with_body(mut self, body: &str) -> Answer {
        self.body = body.to_owned();
        self
    }

    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
    /// Requests being answered right now, by webhook-id, to catch two at once.
    in_flight: Mutex<Vec<String>>,
    overlaps: Mutex<Vec<String>>,
    arrived: Notify,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner = Arc::new(Inner::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/concur", listener.local_addr().unwrap());
        let app = Router::new().fallback(record).with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, inner }
    }

    /// The next answers, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.script.lock().unwrap().extend(answers);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// Webhook ids that were being delivered twice at the same moment.
    pub fn overlaps(&self) -> Vec<String> {
        self.inner.overlaps.lock().unwrap().clone()
    }

    /// Waits (up to 30 s) until `count` requests have arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let wait = async {
            loop {
                let arrived = self.inner.arrived.notified();
                if self.inner.received.lock().unwrap().len() >= count {
                    return self.received();
                }
                arrived.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("{count} deliveries did not arrive"))
    }
}

async fn record(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Received {
        path_and_query: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let id = request.webhook_id().to_owned();
    {
        let mut in_flight = inner.in_flight.lock().unwrap();
        if in_flight.contains(&id) {
            inner.overlaps.lock().unwrap().push(id.clone());
        }
        in_flight.push(id.clone());
    }
    inner.received.lock().unwrap().push(request);
    inner.arrived.notify_waiters();
    let answer = inner
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Answer::status(200));
    tokio::time::sleep(answer.delay).await;
    {
        let mut in_flight = inner.in_flight.lock().unwrap();
        if let Some(at) = in_flight.iter().position(|x| *x == id) {
            in_flight.remove(at);
        }
    }
    let mut response = (
        StatusCode::from_u16(answer.status).unwrap(),
        answer.body.clone(),
    )
        .into_response();
    for (name, value) in answer.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// A partner endpoint that accepts connections and never answers, holding them open until
/// `hang_up`: each request to it lasts the whole delivery timeout.
pub struct SilentEndpoint {
    pub url: String,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl SilentEndpoint {
    pub async fn start() -> SilentEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/stuck", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            // Dropping a socket would answer the request with a closed connection.
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        SilentEndpoint {
            url,
            accepted,
            task,
        }
    }

    /// Connections accepted so far: one per request in flight, as none is ever answered.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes every connection (the requests waiting on them fail at once) and stops listening.
    pub fn hang_up(&self) {
        self.task.abort();
    }
}

impl Drop for SilentEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}
