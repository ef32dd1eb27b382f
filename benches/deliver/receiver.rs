//! The partner's end of the delivery benchmark: a hyper server on 127.0.0.1 that answers 200 at
//! once and notes, for every request, when it arrived, its `webhook-id` and the event it is
//! about (the `TripId` of the notification, which the benchmark sets to the event's number).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the receiver saw it.
pub struct Arrival {
    pub at: Instant,
    pub webhook_id: String,
    /// The event's number, from `<TripId>bench-N</TripId>`; `None` if the body had no such id.
    pub event: Option<usize>,
}

#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<Vec<Arrival>>>);

impl Arrivals {
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn take(&self) -> Vec<Arrival> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Starts the receiver on a port of its own; returns its address and what it records.
pub async fn start() -> anyhow::Result<(SocketAddr, Arrivals)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let arrivals = Arrivals::default();
    let kept = arrivals.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let arrivals = kept.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let arrivals = arrivals.clone();
                    async move {
                        let webhook_id = request
                            .headers()
                            .get("webhook-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let body = request.into_body().collect().await?.to_bytes();
                        let at = Instant::now();
                        arrivals.0.lock().unwrap().push(Arrival {
                            at,
                            webhook_id,
                            event: event_number(&body),
                        });
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, arrivals))
}

fn event_number(body: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<TripId>bench-")? + "<TripId>bench-".len();
    let end = start + text[start..].find('<')?;
    text[start..end].parse().ok()
}
