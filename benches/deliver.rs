//! Delivery benchmark: starts the release `maestro` on a fresh database, registers a partner
//! whose postback URL is a fast receiver in this process (a hyper server on 127.0.0.1 answering
//! 200 at once), subscribes it, publishes N company events over HTTP from several concurrent
//! clients as fast as the server accepts them, and reports how fast the postbacks arrive:
//! delivered/s, event → delivery latency (from the client's publish to the receiver's arrival),
//! duplicates (one `webhook-id` twice), missing deliveries, and the server's CPU time per
//! delivery (`/proc/<pid>/stat`, intake included).
//!
//! `--backlog` queues the events with no delivery worker running (`MAESTRO_ROLE=api`), then
//! starts a server with its worker and times how fast it drains them.
//!
//! ```text
//! cargo bench --bench deliver
//! cargo bench --bench deliver -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench --bench deliver -- --backlog --events 50000
//! cargo bench --bench deliver -- --binary /tmp/maestro-before --env MAESTRO_DELIVERY_CONCURRENCY=64
//! ```

#[path = "deliver/receiver.rs"]
mod receiver;
#[path = "support/server.rs"]
mod server;
#[path = "deliver/setup.rs"]
mod setup;

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, body::Bytes, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use self::{
    server::{Database, Server, cpu_seconds, load_average, master_key, postgres_cpu_seconds},
    setup::{COMPANY, Cli},
};

#[derive(Parser, Debug)]
#[command(about = "maestro delivery benchmark")]
struct Args {
    /// Company events to publish (one delivery each).
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Concurrent publishing clients, each with one HTTP/1.1 connection and one request at a time.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Queue the events with no worker running, then time a worker draining them.
    #[arg(long)]
    backlog: bool,
    /// Run against PostgreSQL: a server URL; a fresh database is created on it and dropped after.
    #[arg(long)]
    postgres: Option<String>,
    /// Settings for the server, `NAME=VALUE` (e.g. `MAESTRO_DELIVERY_CONCURRENCY=64`).
    #[arg(long = "env", value_parser = parse_env)]
    envs: Vec<(String, String)>,
    /// Give up waiting for deliveries once none arrived for this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    stall: Duration,
    /// Run this `maestro` binary instead of the one built with the benchmark.
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Keep the server's log here (default: discarded with the temporary directory).
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Write the report as JSON here as well.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text}: expected NAME=VALUE"))
}

#[derive(serde::Serialize, Default)]
struct Report {
    mode: &'static str,
    backend: &'static str,
    server: String,
    events: usize,
    clients: usize,
    settings: Vec<String>,
    load_average_before: String,
    load_average_after: String,
    /// Events accepted (202) per second while publishing.
    accepted_per_second: f64,
    publish_errors: BTreeMap<u16, u64>,
    delivered: usize,
    /// Distinct deliveries per second, from the first publish (live) or the worker's start
    /// (backlog) to the last arrival.
    delivered_per_second: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    latency_max_ms: f64,
    duplicates: usize,
    missing: usize,
    server_cpu_us_per_delivery: f64,
    /// The CPU of the machine's `postgres` processes per delivery (PostgreSQL only).
    postgres_cpu_us_per_delivery: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let database = runtime.block_on(Database::create(args.postgres.as_deref(), dir.path()))?;
    let report = runtime.block_on(run(&args, &database, dir.path()));
    runtime.block_on(database.drop())?;
    let report = report?;
    println!("{}", render(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

async fn run(args: &Args, database: &Database, dir: &Path) -> anyhow::Result<Report> {
    let binary = args
        .binary
        .as_deref()
        .and_then(Path::to_str)
        .unwrap_or(env!("CARGO_BIN_EXE_maestro"));
    let master_key = master_key();
    let (receiver_addr, arrivals) = receiver::start().await?;
    let cli = Cli {
        binary,
        url: &database.url,
        master_key: &master_key,
    };
    cli.prepare(dir, &receiver_addr.to_string())?;
    let (admin, producer) = (cli.admin_token()?, cli.producer_token()?);
    let log = args
        .server_log
        .clone()
        .unwrap_or_else(|| dir.join("server.log"));
    // The receiver listens on the loopback address, which the SSRF guard refuses by default.
    let mut env = vec![(
        "MAESTRO_DELIVERY_ALLOWED_SUBNETS".to_owned(),
        "127.0.0.0/8".to_owned(),
    )];
    env.extend(args.envs.iter().cloned());
    if args.backlog {
        env.push(("MAESTRO_ROLE".into(), "api".into()));
    }
    let mut server = Server::start(binary, &database.url, &master_key, &log, &env)?;
    let status = post(
        &server.addr,
        "/api/company/v1.0/subscribe?type=itinerary",
        &format!("OAuth {admin}"),
        String::new(),
    )
    .await?;
    anyhow::ensure!(status == 200, "subscribing answered {status}");

    let mut report = Report {
        mode: if args.backlog { "backlog" } else { "live" },
        backend: if args.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        server: binary.to_owned(),
        events: args.events,
        clients: args.clients,
        settings: args.envs.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        load_average_before: load_average(),
        ..Report::default()
    };
    let base = Instant::now();
    let cpu_before = cpu_seconds(server.child.id());
    let postgres_before = args.postgres.is_some().then(postgres_cpu_seconds);
    let published = publish(args, &server.addr, &producer, base).await?;
    report.accepted_per_second = published.accepted as f64 / published.took.as_secs_f64();
    report.publish_errors = published.errors;
    let (from, cpu_before) = if args.backlog {
        server.stop()?;
        anyhow::ensure!(arrivals.count() == 0, "an api-only server delivered");
        env.retain(|(k, _)| k != "MAESTRO_ROLE");
        server = Server::start(binary, &database.url, &master_key, &log, &env)?;
        (Instant::now(), cpu_seconds(server.child.id()))
    } else {
        (base, cpu_before)
    };
    wait_for(&arrivals, published.accepted, args.stall).await;
    let cpu = cpu_seconds(server.child.id()) - cpu_before;
    let postgres_cpu = postgres_before.map(|before| postgres_cpu_seconds() - before);
    server.stop()?;
    report.load_average_after = load_average();

    let received = arrivals.take();
    let mut seen = HashSet::new();
    let mut latencies = Vec::new();
    let mut last = from;
    for arrival in &received {
        if !seen.insert(arrival.webhook_id.as_str()) {
            report.duplicates += 1;
            continue;
        }
        last = last.max(arrival.at);
        if let Some(sent) = arrival.event.and_then(|n| published.sent_at.get(n)) {
            let sent = base + Duration::from_nanos(sent.load(Ordering::Relaxed));
            latencies.push(arrival.at.saturating_duration_since(sent));
        }
    }
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    report.delivered = seen.len();
    report.missing = published.accepted.saturating_sub(seen.len());
    report.delivered_per_second = seen.len() as f64 / (last - from).as_secs_f64().max(1e-9);
    report.latency_p50_ms = percentile(0.50);
    report.latency_p99_ms = percentile(0.99);
    report.latency_max_ms = latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    report.server_cpu_us_per_delivery = cpu / seen.len().max(1) as f64 * 1e6;
    report.postgres_cpu_us_per_delivery =
        postgres_cpu.map(|cpu| cpu / seen.len().max(1) as f64 * 1e6);
    Ok(report)
}

struct Published {
    accepted: usize,
    took: Duration,
    errors: BTreeMap<u16, u64>,
    /// When each event's request was sent, in nanoseconds from the run's base instant.
    sent_at: Arc<Vec<AtomicU64>>,
}

/// Publishes `args.events` events from `args.clients` connections, each sending its next event
/// as soon as the previous one is answered.
async fn publish(args: &Args, addr: &str, token: &str, base: Instant) -> anyhow::Result<Published> {
    let next = Arc::new(AtomicUsize::new(0));
    let sent_at: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.events).map(|_| AtomicU64::new(0)).collect());
    let authorization: header::HeaderValue = format!("Bearer {token}").parse()?;
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..args.clients {
        let (next, sent_at, authorization) = (next.clone(), sent_at.clone(), authorization.clone());
        let (addr, events) = (addr.to_owned(), args.events);
        clients.spawn(async move {
            let mut sender = connect(&addr).await?;
            let mut errors = BTreeMap::new();
            let mut accepted = 0usize;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= events {
                    break;
                }
                let body = format!(
                    "{{\"type\":\"itinerary\",\"eventType\":\"CREATE\",\"companyId\":\"{COMPANY}\",\
                     \"userLogin\":\"bench@example.com\",\"tripId\":\"bench-{n}\",\
                     \"occurredAt\":\"2026-01-01T00:00:00Z\"}}"
                );
                let request = Request::builder()
                    .method(Method::POST)
                    .uri("/internal/v1/company-events")
                    .header(header::HOST, "bench")
                    .header(header::AUTHORIZATION, authorization.clone())
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))?;
                sender.ready().await?;
                sent_at[n].store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                let response = sender.send_request(request).await?;
                let status = response.status().as_u16();
                response.into_body().collect().await?;
                match status {
                    202 => accepted += 1,
                    other => *errors.entry(other).or_insert(0u64) += 1,
                }
            }
            anyhow::Ok((accepted, errors))
        });
    }
    let mut published = Published {
        accepted: 0,
        took: Duration::ZERO,
        errors: BTreeMap::new(),
        sent_at,
    };
    for result in clients.join_all().await {
        let (accepted, errors) = result?;
        published.accepted += accepted;
        for (status, count) in errors {
            *published.errors.entry(status).or_default() += count;
        }
    }
    published.took = started.elapsed();
    Ok(published)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: &str) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn post(addr: &str, path: &str, authorization: &str, body: String) -> anyhow::Result<u16> {
    let mut sender = connect(addr).await?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, "bench")
        .header(header::AUTHORIZATION, authorization)
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

/// Waits until `expected` requests arrived, or none arrived for `stall`.
async fn wait_for(arrivals: &receiver::Arrivals, expected: usize, stall: Duration) {
    let (mut count, mut progress) = (arrivals.count(), Instant::now());
    while count < expected && progress.elapsed() < stall {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = arrivals.count();
        if now != count {
            (count, progress) = (now, Instant::now());
        }
    }
}

fn render(report: &Report) -> String {
    let errors = match report.publish_errors.is_empty() {
        true => "none".to_owned(),
        false => report
            .publish_errors
            .iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect::<Vec<_>>()
            .join(" "),
    };
    format!(
        "maestro delivery benchmark — {} mode, backend {}, {} events, {} publishing clients, \
         settings [{}]\nserver: {}\nload average before {} / after {}\n\n\
         | accepted/s | publish errors | delivered | delivered/s | latency p50 ms | p99 ms | max ms \
         | duplicates | missing | server CPU µs/delivery | PostgreSQL CPU µs/delivery |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n\
         | {:.0} | {errors} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {:.0} | {} |\n",
        report.mode,
        report.backend,
        report.events,
        report.clients,
        report.settings.join(" "),
        report.server,
        report.load_average_before,
        report.load_average_after,
        report.accepted_per_second,
        report.delivered,
        report.delivered_per_second,
        report.latency_p50_ms,
        report.latency_p99_ms,
        report.latency_max_ms,
        report.duplicates,
        report.missing,
        report.server_cpu_us_per_delivery,
        report
            .postgres_cpu_us_per_delivery
            .map_or("–".to_owned(), |cpu| format!("{cpu:.0}")),
    )
}
