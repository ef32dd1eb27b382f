//! Logs and metrics.
//!
//! Logs are JSON lines on stderr; every line written while a request is handled carries its
//! correlation id (from the request span). Metrics go to a Prometheus recorder owned by the app
//! (not a process-global one), so several apps in one process — as in the tests — keep apart.

use std::time::Duration;

use metrics::{Recorder, counter, gauge, histogram, with_local_recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the JSON log subscriber. `RUST_LOG` filters (default `info`).
///
/// Lines go to stderr through a background writer thread, so a request never waits for the
/// write system call; the returned guard flushes what is pending when it drops (keep it for
/// the life of the process). Should the buffer fill, request threads wait rather than drop
/// lines: logs are part of the audit trail.
pub fn init_logging() -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(writer),
        )
        .try_init();
    guard
}

const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    recorder: PrometheusRecorder,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("maestro_http_request_duration_seconds".to_owned()),
                &LATENCY_BUCKETS,
            )
            .expect("the bucket list is not empty")
            .build_recorder();
        Metrics { recorder }
    }

    fn record(&self, f: impl FnOnce()) {
        with_local_recorder(&self.recorder as &dyn Recorder, f);
    }

    pub fn request_finished(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = [
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        self.record(|| {
            counter!("maestro_http_requests_total", &labels).increment(1);
            histogram!("maestro_http_request_duration_seconds", &labels[..2])
                .record(elapsed.as_secs_f64());
        });
    }

    /// Counts a request as in flight until the guard drops (also when the client goes away).
    pub fn in_flight(&self) -> Gauged<'_> {
        self.gauged("maestro_http_requests_in_flight")
    }

    /// Counts a request whose body is still arriving (it holds no work permit meanwhile).
    pub fn receiving_body(&self) -> Gauged<'_> {
        self.gauged("maestro_http_request_bodies_in_progress")
    }

    fn gauged(&self, name: &'static str) -> Gauged<'_> {
        self.record(|| gauge!(name).increment(1.0));
        Gauged(self, name)
    }

    pub fn alert_accepted(&self, operation: &'static str) {
        self.record(|| {
            counter!("maestro_alerts_accepted_total", "operation" => operation).increment(1)
        });
    }

    pub fn alert_rejected(&self, operation: &'static str, code: &'static str) {
        self.record(|| {
            counter!("maestro_alerts_rejected_total", "operation" => operation, "code" => code)
                .increment(1)
        });
    }

    /// One attempt to deliver a company notification, by outcome (`delivered`, `retry`, …).
    pub fn delivery_attempted(&self, outcome: &'static str, elapsed: Duration) {
        self.record(|| {
            counter!("maestro_delivery_attempts_total", "outcome" => outcome).increment(1);
            histogram!("maestro_delivery_attempt_duration_seconds").record(elapsed.as_secs_f64());
        });
    }

    /// How long the oldest event not yet published downstream has waited (0 when caught up).
    pub fn outbox_publish_lag(&self, seconds: f64) {
        self.record(|| gauge!("maestro_outbox_publish_lag_seconds").set(seconds));
    }

    /// Messages JetStream acknowledged, by feed (`alerts`, `company`); `duplicates` of them it
    /// already had.
    pub fn outbox_published(&self, feed: &'static str, acknowledged: usize, duplicates: usize) {
        self.record(|| {
            counter!("maestro_outbox_published_total", "feed" => feed)
                .increment(acknowledged as u64);
            counter!("maestro_outbox_published_duplicates_total", "feed" => feed)
                .increment(duplicates as u64);
        });
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        let handle = self.recorder.handle();
        handle.run_upkeep();
        handle.render()
    }
}

/// One unit of a gauge, given back when dropped.
pub struct Gauged<'a>(&'a Metrics, &'static str);

impl Drop for Gauged<'_> {
    fn drop(&mut self) {
        let name = self.1;
        self.0.record(|| gauge!(name).decrement(1.0));
    }
}
