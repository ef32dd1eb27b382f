//! The load itself: the requests of each phase (`/healthz`, a create with an extRef of its own,
//! an update of an alert created before), sent on every connection for a warm-up and then for
//! the measured time, each answer timed.

use std::{collections::BTreeMap, time::Instant};

use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, body::Bytes, header};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::net::TcpStream;

use super::{Args, Phase, Usage, server::postgres_cpu_seconds};

pub(super) struct Target {
    pub(super) addr: String,
    pub(super) server_pid: String,
    pub(super) token: String,
    /// The seed payload with `__EXTREF__` and `__AMOUNT__` to fill in.
    pub(super) template: String,
    /// Whether the database is PostgreSQL, whose server's CPU is counted too.
    pub(super) postgres: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Healthz,
    Create,
    Update,
}

pub(super) fn payload_template() -> String {
    let seed = include_str!("../../tests/fixtures/groundspan_post.json");
    let mut body: Value = serde_json::from_str(seed).expect("the seed fixture is JSON");
    let now = OffsetDateTime::now_utc();
    body["createdAt"] = json!(now.format(&Rfc3339).unwrap());
    body["expiresAt"] = json!((now + time::Duration::days(30)).format(&Rfc3339).unwrap());
    body["extRef"] = json!("__EXTREF__");
    body["metadata"]["packages"][0]["variants"][0]["price"]["amount"] = json!(450.5);
    serde_json::to_string(&body)
        .unwrap()
        .replace("450.5", "__AMOUNT__")
}

/// Runs one phase: a warm-up, then `duration` of measured load on every connection. Returns the
/// figures and how many requests each connection sent (updates reuse the extRefs of creates).
pub(super) async fn measure(
    args: &Args,
    target: &Target,
    kind: Kind,
    created: &[u64],
) -> anyhow::Result<(Phase, Vec<u64>)> {
    let warmup_end = Instant::now() + args.warmup;
    let end = warmup_end + args.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for connection in 0..args.connections {
        let request = RequestMaker::new(
            kind,
            connection,
            created.get(connection).copied().unwrap_or(0),
            &target.token,
            &target.template,
            args.distinct_metadata,
        );
        let addr = target.addr.clone();
        tasks.spawn(drive(addr, request, warmup_end, end));
    }
    // Usage is counted over the measured period only, not the warm-up.
    tokio::time::sleep_until(warmup_end.into()).await;
    let (server_before, client_before) = (Usage::of(&target.server_pid), Usage::of("self"));
    let database_before = target.postgres.then(postgres_cpu_seconds);
    let mut latencies = Vec::new();
    let mut phase = Phase::default();
    let mut ok = 0u64;
    let mut sent = vec![0; args.connections];
    for result in tasks.join_all().await {
        let outcome = result?;
        sent[outcome.connection] = outcome.sent;
        latencies.extend(outcome.latencies_us);
        ok += outcome.ok;
        for (status, count) in outcome.errors {
            *phase.errors_by_status.entry(status).or_default() += count;
        }
    }
    let (server_after, client_after) = (Usage::of(&target.server_pid), Usage::of("self"));
    let database_after = target.postgres.then(postgres_cpu_seconds);
    latencies.sort_unstable();
    let per_request = |total: f64| total / (latencies.len().max(1) as f64);
    phase.server_cpu_us_per_request =
        per_request(server_after.cpu_seconds - server_before.cpu_seconds) * 1e6;
    phase.client_cpu_us_per_request =
        per_request(client_after.cpu_seconds - client_before.cpu_seconds) * 1e6;
    if let (Some(before), Some(after)) = (database_before, database_after) {
        phase.database_cpu_us_per_request = per_request(after - before) * 1e6;
    }
    phase.server_disk_kb_per_request =
        per_request(server_after.disk_bytes - server_before.disk_bytes) / 1024.0;
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    };
    phase.requests = latencies.len() as u64;
    phase.ok_per_second = ok as f64 / args.duration.as_secs_f64();
    phase.p50_ms = percentile(0.50);
    phase.p99_ms = percentile(0.99);
    phase.max_ms = latencies.last().map_or(0.0, |us| f64::from(*us) / 1000.0);
    Ok((phase, sent))
}

pub(super) struct RequestMaker {
    pub(super) kind: Kind,
    pub(super) connection: usize,
    /// Alerts this connection created in the create phase.
    pub(super) created: u64,
    /// The body template cut at its two placeholders: the bodies are built by appending, without
    /// searching the ~3 KB template twice per request (the load generator shares the cores).
    pub(super) pieces: [String; 3],
    /// `Bearer <token>`, made once.
    pub(super) authorization: hyper::header::HeaderValue,
    /// Creates carry a price of their own (`--distinct-metadata`).
    pub(super) distinct: bool,
}

/// The template's text before `__EXTREF__`, between it and `__AMOUNT__`, and after.
pub(super) fn cut(template: &str) -> [String; 3] {
    let (head, rest) = template
        .split_once("__EXTREF__")
        .expect("the template has an extRef placeholder");
    let (middle, tail) = rest
        .split_once("__AMOUNT__")
        .expect("the price comes after the extRef in canonical key order");
    [head.to_owned(), middle.to_owned(), tail.to_owned()]
}

impl RequestMaker {
    fn new(
        kind: Kind,
        connection: usize,
        created: u64,
        token: &str,
        template: &str,
        distinct: bool,
    ) -> Self {
        RequestMaker {
            kind,
            connection,
            created,
            pieces: cut(template),
            authorization: format!("Bearer {token}").parse().expect("a header value"),
            distinct,
        }
    }

    /// The n-th request of this connection. Creates use a new extRef each time; updates cycle
    /// over the extRefs this connection created, each time with a new price.
    fn make(&self, n: u64) -> Request<Full<Bytes>> {
        let builder = Request::builder().header(header::HOST, "bench");
        match self.kind {
            Kind::Healthz => builder
                .method(Method::GET)
                .uri("/healthz")
                .body(Full::new(Bytes::new()))
                .unwrap(),
            Kind::Create | Kind::Update => {
                let (method, index, amount) = match self.kind {
                    // Unique across connections: the connection in the high digits.
                    Kind::Create if self.distinct => (
                        Method::POST,
                        n,
                        (self.connection as u64 * 100_000_000 + n) as f64 + 0.5,
                    ),
                    Kind::Create => (Method::POST, n, 450.5),
                    _ => (Method::PUT, n % self.created.max(1), 500.0 + n as f64),
                };
                use std::fmt::Write;
                let [head, middle, tail] = &self.pieces;
                let mut body = String::with_capacity(
                    head.len() + middle.len() + tail.len() + 32, // + extRef and price
                );
                body.push_str(head);
                let _ = write!(body, "bench-{}-{index}", self.connection);
                body.push_str(middle);
                let _ = write!(body, "{amount:.1}");
                body.push_str(tail);
                builder
                    .method(method)
                    .uri("/maestro/v4/alerts")
                    .header(header::AUTHORIZATION, self.authorization.clone())
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap()
            }
        }
    }
}

#[derive(Default)]
pub(super) struct Outcome {
    pub(super) connection: usize,
    pub(super) sent: u64,
    pub(super) latencies_us: Vec<u32>,
    pub(super) ok: u64,
    pub(super) errors: BTreeMap<u16, u64>,
}

pub(super) async fn drive(
    addr: String,
    maker: RequestMaker,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<Outcome> {
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut outcome = Outcome {
        connection: maker.connection,
        ..Outcome::default()
    };
    let mut n = 0u64;
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        sender.ready().await?;
        let response = sender.send_request(maker.make(n)).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        n += 1;
        if started >= measure_from {
            outcome
                .latencies_us
                .push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            if status == 200 {
                outcome.ok += 1;
            } else {
                *outcome.errors.entry(status).or_default() += 1;
            }
        }
    }
    outcome.sent = n;
    Ok(outcome)
}
