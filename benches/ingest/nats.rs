//! `--nats URL`: the downstream publisher measured beside ingestion. The server publishes to a
//! stream of the run's own (deleted after); the lag gauge is sampled every 100 ms during each
//! phase, and the publisher's count gives how many events it published per second. With
//! `--nats-backlog` the phases run without NATS and a server with NATS is then started on the
//! backlog they left: the time it takes to drain gives the publisher's own ceiling.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::{Request, body::Bytes, header};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::watch, task::JoinHandle};

pub struct NatsRun {
    pub url: String,
    pub stream: String,
    pub prefix: String,
}

impl NatsRun {
    pub fn new(url: &str) -> NatsRun {
        let run = std::process::id();
        NatsRun {
            url: url.to_owned(),
            stream: format!("MAESTRO_BENCH_{run}"),
            prefix: format!("bench{run}.maestro"),
        }
    }

    /// The server's environment for it.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("MAESTRO_NATS_URL".into(), self.url.clone()),
            ("MAESTRO_NATS_STREAM".into(), self.stream.clone()),
            ("MAESTRO_NATS_SUBJECT_PREFIX".into(), self.prefix.clone()),
        ]
    }

    pub async fn delete(&self) -> anyhow::Result<()> {
        let client = async_nats::connect(&self.url).await?;
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&self.stream)
            .await;
        Ok(())
    }
}

/// Percentiles of the lag samples of a phase, in seconds.
#[derive(serde::Serialize, Default, Clone, Copy)]
pub struct Lag {
    pub samples: usize,
    pub p50_s: f64,
    pub p99_s: f64,
    pub max_s: f64,
}

#[derive(serde::Serialize, Default)]
pub struct NatsReport {
    pub create_lag: Lag,
    pub update_lag: Lag,
    pub create_published_per_second: f64,
    pub update_published_per_second: f64,
    /// From the end of the load to a lag of 0.
    pub caught_up_after_s: f64,
    /// `--nats-backlog`: events published from the backlog, and how fast.
    pub backlog_events: f64,
    pub backlog_drained_s: f64,
    pub backlog_per_second: f64,
}

/// Samples the lag gauge until finished.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<f64>>,
    published_before: f64,
    started: Instant,
}

impl Sampler {
    pub async fn start(addr: &str) -> Sampler {
        let (stop, mut stopped) = watch::channel(false);
        let addr = addr.to_owned();
        let published_before = published(&addr).await;
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !*stopped.borrow() {
                if let Some(lag) = gauge(&addr, "maestro_outbox_publish_lag_seconds").await {
                    samples.push(lag);
                }
                tokio::select! {
                    _ = stopped.changed() => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            samples
        });
        Sampler {
            stop,
            task,
            published_before,
            started: Instant::now(),
        }
    }

    /// The lag's figures and the events published per second over the sampled time.
    pub async fn finish(self, addr: &str) -> anyhow::Result<(Lag, f64)> {
        let elapsed = self.started.elapsed().as_secs_f64();
        let _ = self.stop.send(true);
        let mut samples = self.task.await?;
        let rate = (published(addr).await - self.published_before) / elapsed;
        samples.sort_by(f64::total_cmp);
        let at = |p: f64| {
            samples
                .get(((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0.0)
        };
        let lag = Lag {
            samples: samples.len(),
            p50_s: at(0.50),
            p99_s: at(0.99),
            max_s: samples.last().copied().unwrap_or(0.0),
        };
        Ok((lag, rate))
    }
}

/// Waits for a lag of 0 (at most `limit`); returns how long that took.
pub async fn until_caught_up(addr: &str, limit: Duration) -> f64 {
    let started = Instant::now();
    while started.elapsed() < limit {
        // The gauge appears with the publisher's first pass, which publishes up to where the
        // outbox ended when it began.
        let lag = gauge(addr, "maestro_outbox_publish_lag_seconds").await;
        if lag == Some(0.0) && published(addr).await > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed().as_secs_f64()
}

/// Events the server has published so far.
pub async fn published(addr: &str) -> f64 {
    gauge(addr, "maestro_outbox_published_total{feed=\"alerts\"}")
        .await
        .unwrap_or(0.0)
}

async fn gauge(addr: &str, name: &str) -> Option<f64> {
    let text = metrics(addr).await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

async fn metrics(addr: &str) -> anyhow::Result<String> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get("/metrics")
        .header(header::HOST, "bench")
        .body(Full::new(Bytes::new()))?;
    let body = sender.send_request(request).await?.into_body();
    Ok(String::from_utf8_lossy(&body.collect().await?.to_bytes()).into_owned())
}
