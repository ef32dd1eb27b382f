//! Logs, metrics and traces.
//!
//! Logs are JSON lines on stderr; every line written while a request is handled carries its
//! correlation id (from the request span). Metrics ([`metrics`]) go to a Prometheus recorder
//! owned by the app. Traces ([`traces`]) are exported over OTLP only when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` asks for it.

pub mod gauges;
mod log_sink;
pub mod metrics;
pub mod traces;

use std::time::Duration;

use tracing_subscriber::{EnvFilter, Layer, fmt, prelude::*};

pub use self::metrics::{Gauged, Metrics, PartnerBacklog};
use self::traces::Traces;

/// What the process keeps while it runs: dropping it sends the spans still buffered, then
/// flushes the log lines still queued. Drop it while the tokio runtime still runs (the last
/// export is made on it).
pub struct Telemetry {
    traces: Option<Traces>,
    _log_flush: tracing_appender::non_blocking::WorkerGuard,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(traces) = &self.traces {
            traces.shutdown();
        }
    }
}

/// Installs the JSON log subscriber, and the span exporter when `traces` is given. `RUST_LOG`
/// filters the log lines (default `info`); it does not filter the exported spans, which are
/// maestro's own at `info` and above, so quieter logs do not cut traces short.
///
/// Lines go to stderr through a background writer thread, so a request never waits for the
/// write system call (nor, when stderr is a file, for its pages' write-out: `log_sink`). Should
/// the buffer fill, request threads wait rather than drop lines: logs are part of the audit trail.
pub fn init(traces: Option<Traces>) -> Telemetry {
    let (writer, log_flush) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(log_sink::LogSink::stderr());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(writer)
        .with_filter(filter);
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(traces.as_ref().map(|traces| traces.layer()))
        .try_init()
        .is_ok();
    if installed && traces.is_some() {
        traces::mark_enabled();
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    Telemetry {
        traces,
        _log_flush: log_flush,
    }
}

/// A duration as milliseconds with at most three decimals (whole microseconds), so that a log
/// line shows `12.345` rather than the float noise of `12.345000000000001`.
pub fn millis(elapsed: Duration) -> f64 {
    let micros = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
    micros as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_have_three_decimals_and_no_noise() {
        for (micros, text) in [(12_345, "12.345"), (1, "0.001"), (100_000, "100.0")] {
            let value = serde_json::json!(millis(Duration::from_micros(micros)));
            assert_eq!(value.to_string(), text);
        }
        assert_eq!(millis(Duration::from_nanos(1_999)), 0.001, "truncated");
    }
}
