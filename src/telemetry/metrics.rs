//! The Prometheus metrics. Every family is declared once, in [`FAMILIES`], with its help text;
//! the recorder is owned by the app (used through `with_local_recorder`), not process-global, so
//! several apps in one process — as in the tests — keep apart.
//!
//! Adding a metric: a line in [`FAMILIES`], and a method here that records it — for a gauge
//! without labels, [`Metrics::set_gauge`] called where the value is known, or in
//! `telemetry::gauges::sample` when it is read at scrape time. A test checks that every family
//! exposed has `# HELP` and that none is a summary.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use metrics::{
    Recorder, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
    with_local_recorder,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric family: its name, kind and `# HELP` text.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn family(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family { name, kind, help }
}

/// Every family maestro records itself (the `process_*` ones come from `metrics-process`, which
/// describes its own). Labels: `partner` is a registered partner's id (partners are few), never a
/// user or company id; `route` is the route template, never the path.
pub const FAMILIES: &[Family] = &[
    family(
        "maestro_build_info",
        Kind::Gauge,
        "Always 1; the labels say which build is running.",
    ),
    family(
        "maestro_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by method, route template and status.",
    ),
    family(
        "maestro_http_request_duration_seconds",
        Kind::Histogram,
        "Time from a request's arrival to its answer's head, by method and route template.",
    ),
    family(
        "maestro_http_requests_in_flight",
        Kind::Gauge,
        "Requests being worked on (holding a concurrency permit).",
    ),
    family(
        "maestro_http_request_bodies_in_progress",
        Kind::Gauge,
        "Requests whose body is still arriving (they hold no concurrency permit meanwhile).",
    ),
    family(
        "maestro_alerts_accepted_total",
        Kind::Counter,
        "Alert operations accepted, by operation and partner.",
    ),
    family(
        "maestro_alerts_rejected_total",
        Kind::Counter,
        "Alert operations refused, by operation, error code and partner (empty when the \
         caller named no registered partner).",
    ),
    family(
        "maestro_delivery_attempts_total",
        Kind::Counter,
        "Attempts to deliver a company notification, by partner and outcome (delivered, retry, \
         failed, gone).",
    ),
    family(
        "maestro_delivery_attempt_duration_seconds",
        Kind::Histogram,
        "Time a delivery attempt took, from sending the request to reading the answer, by \
         partner.",
    ),
    family(
        "maestro_deliveries_pending",
        Kind::Gauge,
        "Deliveries not yet delivered nor given up, by partner, counted in the database (the \
         same on every instance: aggregate with max).",
    ),
    family(
        "maestro_delivery_oldest_due_age_seconds",
        Kind::Gauge,
        "How long the oldest due delivery has been due, by partner (0 when none is due).",
    ),
    family(
        "maestro_delivery_worker_lag_seconds",
        Kind::Gauge,
        "How long the deliveries this instance's worker last claimed had waited for it, partners \
         slower than MAESTRO_DELIVERY_LAG_LIMIT left out: what paces company-event intake.",
    ),
    family(
        "maestro_delivery_worker_step_seconds",
        Kind::Histogram,
        "Time one step of this instance's delivery worker took in the database: recording the \
         attempts that ended and claiming the room they freed, in one transaction.",
    ),
    family(
        "maestro_company_events_waiting",
        Kind::Gauge,
        "Company events waiting for the delivery worker to catch up before they are recorded.",
    ),
    family(
        "maestro_company_events_paced_total",
        Kind::Counter,
        "Company events whose intake waited for the delivery worker to catch up, by outcome \
         (caught_up, or waited_out: recorded after the longest wait).",
    ),
    family(
        "maestro_inbox_feed_lag_seconds",
        Kind::Gauge,
        "Time since the inbox feed last read the outbox to its head: how stale a live stream \
         may be (API instances only).",
    ),
    family(
        "maestro_inbox_streams_open",
        Kind::Gauge,
        "Live inbox streams (Server-Sent Events) open on this instance.",
    ),
    family(
        "maestro_outbox_publish_lag_seconds",
        Kind::Gauge,
        "How long the oldest event not yet published to NATS has waited (0 when caught up), \
         read from the database (the same on every instance).",
    ),
    family(
        "maestro_outbox_published_total",
        Kind::Counter,
        "Messages JetStream acknowledged, by feed (alerts, company).",
    ),
    family(
        "maestro_outbox_published_duplicates_total",
        Kind::Counter,
        "Acknowledged messages JetStream already had (a republish its duplicate window dropped), \
         by feed.",
    ),
];

/// Request latencies: 0.5 ms to 10 s. Also the default of any histogram not listed otherwise,
/// so that none is ever exposed as a summary.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A partner's answer: a few ms on a LAN to the delivery timeout (30 s by default) and beyond.
const DELIVERY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// One partner's delivery backlog, as the gauges show it.
#[derive(Clone, Debug, PartialEq)]
pub struct PartnerBacklog {
    pub partner: String,
    pub pending: i64,
    /// How long its oldest due delivery has waited; zero when none is due.
    pub oldest_due: Duration,
}

/// Histogram samples recorded between two upkeeps of the recorder. The exporter keeps every
/// sample of a histogram until an upkeep folds them into its buckets, and a recorder that is
/// not installed globally (this one) runs no upkeep task of its own: only a scrape ran one, so a
/// server nobody scraped kept a sample per request — its RSS rose by about 1 MB a second under
/// wrk (docs/PERFORMANCE.md). An upkeep every so many samples bounds them without a timer.
const UPKEEP_EVERY: u64 = 4096;

pub struct Metrics {
    recorder: PrometheusRecorder,
    process: metrics_process::Collector,
    /// Histogram samples recorded so far (for the upkeep every [`UPKEEP_EVERY`]).
    samples: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&LATENCY_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("maestro_delivery_attempt_duration_seconds".to_owned()),
                    &DELIVERY_BUCKETS,
                )
            })
            .expect("the bucket lists are not empty")
            .build_recorder();
        let metrics = Metrics {
            recorder,
            process: metrics_process::Collector::default(),
            samples: AtomicU64::new(0),
        };
        metrics.record(|| {
            for family in FAMILIES {
                match family.kind {
                    Kind::Counter => describe_counter!(family.name, family.help),
                    Kind::Gauge => describe_gauge!(family.name, family.help),
                    Kind::Histogram => describe_histogram!(family.name, family.help),
                }
            }
            metrics.process.describe();
            gauge!(
                "maestro_build_info",
                "version" => env!("CARGO_PKG_VERSION"),
                "revision" => env!("MAESTRO_BUILD_REVISION"),
                "rustc" => env!("MAESTRO_RUSTC_VERSION"),
            )
            .set(1.0);
        });
        metrics
    }

    fn record(&self, f: impl FnOnce()) {
        with_local_recorder(&self.recorder as &dyn Recorder, f);
    }

    /// Records histogram samples; one call in [`UPKEEP_EVERY`] samples also folds the pending
    /// ones into their buckets.
    fn record_samples(&self, f: impl FnOnce()) {
        self.record(f);
        if upkeep_due(self.samples.fetch_add(1, Ordering::Relaxed)) {
            self.recorder.handle().run_upkeep();
        }
    }

    pub fn request_finished(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = [
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        self.record_samples(|| {
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

    /// Counts a company event as waiting for the delivery worker until the guard drops.
    pub fn company_event_waiting(&self) -> Gauged<'_> {
        self.gauged("maestro_company_events_waiting")
    }

    fn gauged(&self, name: &'static str) -> Gauged<'_> {
        self.record(|| gauge!(name).increment(1.0));
        Gauged(self, name)
    }

    /// `partner` is a registered partner's id, or empty.
    pub fn alert_accepted(&self, operation: &'static str, partner: &str) {
        let labels = [
            ("operation", operation.to_owned()),
            ("partner", partner.to_owned()),
        ];
        self.record(|| counter!("maestro_alerts_accepted_total", &labels).increment(1));
    }

    /// `partner` is a registered partner's id, or empty.
    pub fn alert_rejected(&self, operation: &'static str, code: &'static str, partner: &str) {
        let labels = [
            ("operation", operation.to_owned()),
            ("code", code.to_owned()),
            ("partner", partner.to_owned()),
        ];
        self.record(|| counter!("maestro_alerts_rejected_total", &labels).increment(1));
    }

    /// One attempt to deliver a company notification, by outcome (`delivered`, `retry`, …).
    pub fn delivery_attempted(&self, partner: &str, outcome: &'static str, elapsed: Duration) {
        let partner = ("partner", partner.to_owned());
        let labels = [partner.clone(), ("outcome", outcome.to_owned())];
        self.record_samples(|| {
            counter!("maestro_delivery_attempts_total", &labels).increment(1);
            histogram!("maestro_delivery_attempt_duration_seconds", &[partner])
                .record(elapsed.as_secs_f64());
        });
    }

    /// One step of the delivery worker in the database (`Store::finish_and_claim`).
    pub fn delivery_step(&self, took: Duration) {
        self.record_samples(|| {
            histogram!("maestro_delivery_worker_step_seconds").record(took.as_secs_f64())
        });
    }

    /// A company event waited for the delivery worker; `caught_up` unless the wait ran out.
    pub fn company_event_paced(&self, caught_up: bool) {
        let outcome = if caught_up { "caught_up" } else { "waited_out" };
        self.record(|| {
            counter!("maestro_company_events_paced_total", "outcome" => outcome).increment(1)
        });
    }

    /// The delivery backlog of every partner (those with none included, so that a drained
    /// backlog reads 0 rather than its last value).
    pub fn delivery_backlog(&self, backlog: &[PartnerBacklog]) {
        self.record(|| {
            for partner in backlog {
                let labels = [("partner", partner.partner.clone())];
                gauge!("maestro_deliveries_pending", &labels).set(partner.pending as f64);
                gauge!("maestro_delivery_oldest_due_age_seconds", &labels)
                    .set(partner.oldest_due.as_secs_f64());
            }
        });
    }

    /// The inbox feed's staleness and the live streams it serves.
    pub fn inbox_feed(&self, lag: Duration, streams: usize) {
        self.set_gauge("maestro_inbox_feed_lag_seconds", lag.as_secs_f64());
        self.set_gauge("maestro_inbox_streams_open", streams as f64);
    }

    /// How long the oldest event not yet published downstream has waited (0 when caught up).
    pub fn outbox_publish_lag(&self, seconds: f64) {
        self.set_gauge("maestro_outbox_publish_lag_seconds", seconds);
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

    /// Sets a gauge of [`FAMILIES`] that has no labels: a value measured elsewhere, such as a
    /// lag, whether at each scrape (`telemetry::gauges`) or by the loop that knows it.
    pub fn set_gauge(&self, name: &'static str, value: f64) {
        debug_assert!(
            FAMILIES
                .iter()
                .any(|f| f.name == name && f.kind == Kind::Gauge),
            "{name} is not a gauge of FAMILIES"
        );
        self.record(|| gauge!(name).set(value));
    }

    /// The Prometheus text exposition of everything recorded so far, with the process metrics
    /// read now.
    pub fn render(&self) -> String {
        self.record(|| self.process.collect());
        let handle = self.recorder.handle();
        handle.run_upkeep();
        handle.render()
    }
}

/// Whether the sample recorded after `earlier` others is the one that runs an upkeep: one in
/// [`UPKEEP_EVERY`], the last of each run of them, on whichever thread records it.
fn upkeep_due(earlier: u64) -> bool {
    earlier % UPKEEP_EVERY == UPKEEP_EVERY - 1
}

/// One unit of a gauge, given back when dropped.
pub struct Gauged<'a>(&'a Metrics, &'static str);

impl Drop for Gauged<'_> {
    fn drop(&mut self) {
        let name = self.1;
        self.0.record(|| gauge!(name).decrement(1.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upkeeps_fall_due_once_every_so_many_samples_and_lose_none_across_threads() {
        let metrics = Metrics::new();
        let due = |range: std::ops::Range<u64>| range.filter(|n| upkeep_due(*n)).count();
        assert_eq!(due(0..UPKEEP_EVERY - 1), 0);
        assert_eq!(due(0..UPKEEP_EVERY), 1);
        assert_eq!(due(0..10 * UPKEEP_EVERY + 5), 10);
        // Samples of every histogram count alike, from several threads at once.
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..UPKEEP_EVERY {
                        metrics.request_finished("GET", "/healthz", 200, Duration::from_millis(1));
                        metrics.delivery_step(Duration::from_millis(1));
                    }
                });
            }
        });
        assert_eq!(metrics.samples.load(Ordering::Relaxed), 8 * UPKEEP_EVERY);
        let text = metrics.render();
        assert!(
            text.contains(&format!(
                "maestro_http_request_duration_seconds_count{{method=\"GET\",route=\"/healthz\"}} {}",
                4 * UPKEEP_EVERY
            )),
            "every sample counted once, upkeeps or not:\n{text}"
        );
    }

    #[test]
    fn families_are_named_once_and_by_the_conventions() {
        for (index, family) in FAMILIES.iter().enumerate() {
            assert!(family.name.starts_with("maestro_"), "{}", family.name);
            assert!(!family.help.is_empty(), "{}", family.name);
            let rest = &FAMILIES[index + 1..];
            assert!(
                rest.iter().all(|f| f.name != family.name),
                "{} twice",
                family.name
            );
            match family.kind {
                Kind::Counter => assert!(family.name.ends_with("_total"), "{}", family.name),
                Kind::Histogram => assert!(family.name.ends_with("_seconds"), "{}", family.name),
                Kind::Gauge => assert!(!family.name.ends_with("_total"), "{}", family.name),
            }
        }
    }
}
