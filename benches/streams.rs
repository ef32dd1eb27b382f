//! Live inbox streams at scale: a harness, not a timed test. It starts the release `maestro` on a
//! fresh database, opens `--streams` live streams (`GET /maestro/v4/inbox/stream`) of one user,
//! then, round after round, posts a burst of `--alerts` alerts to that user (on
//! `--connections` connections at once) and times how long it takes until every stream has
//! received every one of them (`alert.created`): each stream's time, and the round's, which is
//! the last stream's. It reports the rounds' median and worst, and the median stream's.
//!
//! With `--across` (PostgreSQL) a second server on the same database serves the streams while
//! the first takes the alerts, so the events reach the streams through the database (its
//! notifications, or the feed's poll) rather than a local poke.
//!
//! ```text
//! cargo bench --bench streams                                           # SQLite, 500 × 200
//! cargo bench --bench streams -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench --bench streams -- --postgres postgres://… --across       # two instances
//! cargo bench --bench streams -- --binary /tmp/maestro-before --rounds 7
//! ```

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Method, Request, body::Bytes, header};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::net::TcpStream;

#[path = "support/server.rs"]
mod server;

use server::{Database, Server, cpu_seconds, issue_token, machine, master_key, migrate};

#[derive(Parser, Debug)]
#[command(about = "maestro live inbox streams benchmark")]
struct Args {
    /// Live streams of the one user, open throughout.
    #[arg(long, default_value_t = 500)]
    streams: usize,
    /// Alerts in each round's burst (each reaches every stream).
    #[arg(long, default_value_t = 200)]
    alerts: usize,
    /// Measured rounds (after one unmeasured round).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Connections the burst is posted on, each sending one request at a time.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Threads of this load generator's runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// How long a round may take before the run gives up.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    round_timeout: Duration,
    /// Run against PostgreSQL: a server URL; a fresh database is created on it and dropped after.
    #[arg(long)]
    postgres: Option<String>,
    /// Streams on a second instance, alerts posted to the first (PostgreSQL only).
    #[arg(long, requires = "postgres")]
    across: bool,
    /// Run this `maestro` binary instead of the one built with the benchmark.
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Write the report as JSON here as well.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the servers' logs here (default: discarded with the temporary directory).
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const COMPANY: &str = "b7d12989-0489-471a-81cd-175f8b78afa5";
/// The seed payload's user, to whom every alert of the bursts goes.
const USER: &str = "b7d12989-0489-471a-81cd-175f8b78afa5";
/// What starts every event of a created alert in the stream's text.
const CREATED: &[u8] = b"event: alert.created\n";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    let database = runtime.block_on(Database::create(args.postgres.as_deref(), dir.path()))?;
    let report = runtime.block_on(run(&args, &database, dir.path()));
    runtime.block_on(database.drop())?;
    let report = report?;
    println!("{}", render(&args, &report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct Report {
    machine: String,
    server: String,
    backend: &'static str,
    across: bool,
    /// Per measured round: until every stream had every alert of the burst, ms.
    rounds_all_ms: Vec<f64>,
    /// Per measured round: until half the streams had every alert, ms.
    rounds_median_stream_ms: Vec<f64>,
    /// Per measured round: how long posting the burst took, ms.
    rounds_burst_ms: Vec<f64>,
    all_p50_ms: f64,
    all_max_ms: f64,
    /// Events received per second over the measured rounds (streams × alerts ÷ time).
    events_per_second: f64,
    /// CPU time of the server(s) over every round, the unmeasured one included.
    server_cpu_seconds: f64,
    server_rss_mb: f64,
}

/// What the stream readers share: how many alerts each stream must have by the end of the
/// round, and when each got there.
struct Progress {
    target: AtomicU64,
    reached: Mutex<Vec<Instant>>,
}

async fn run(args: &Args, database: &Database, dir: &Path) -> anyhow::Result<Report> {
    let binary = args
        .binary
        .as_deref()
        .and_then(Path::to_str)
        .unwrap_or(env!("CARGO_BIN_EXE_maestro"));
    let master_key = master_key();
    migrate(binary, &database.url, &master_key)?;
    let log = args
        .server_log
        .clone()
        .unwrap_or_else(|| dir.join("server.log"));
    let mut ingest = Server::start(binary, &database.url, &master_key, &log, &[])?;
    let mut watched = match args.across {
        true => Some(Server::start(
            binary,
            &database.url,
            &master_key,
            &log,
            &[],
        )?),
        false => None,
    };
    let stream_addr = watched.as_ref().unwrap_or(&ingest).addr.clone();
    let stream_pid = watched.as_ref().unwrap_or(&ingest).child.id();
    let company_token = issue_token(
        binary,
        &database.url,
        &master_key,
        &[
            "--type",
            "company",
            "--subject",
            COMPANY,
            "--app",
            "groundspan",
        ]
        .into_iter()
        .chain(["--scope", "maestro.alerts.writeonly"])
        .collect::<Vec<_>>(),
    )?;
    let user_token = issue_token(
        binary,
        &database.url,
        &master_key,
        &["--type", "user", "--subject", USER, "--company", COMPANY]
            .into_iter()
            .chain(["--scope", "maestro.inbox.readwrite"])
            .collect::<Vec<_>>(),
    )?;

    let progress = Arc::new(Progress {
        target: AtomicU64::new(0),
        reached: Mutex::new(Vec::new()),
    });
    eprintln!("opening {} streams...", args.streams);
    let mut readers = tokio::task::JoinSet::new();
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel(args.streams.max(1));
    for _ in 0..args.streams {
        readers.spawn(read_stream(
            stream_addr.clone(),
            user_token.clone(),
            progress.clone(),
            opened_tx.clone(),
        ));
    }
    for _ in 0..args.streams {
        opened_rx
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("a stream failed to open"))?;
    }

    let template = payload_template();
    let cpu_before = cpu_seconds(stream_pid) + cpu_seconds(ingest.child.id());
    let (mut all, mut median, mut bursts) = (Vec::new(), Vec::new(), Vec::new());
    let mut measured = Duration::ZERO;
    for round in 0..=args.rounds {
        progress.reached.lock().unwrap().clear();
        progress
            .target
            .store(((round + 1) * args.alerts) as u64, Ordering::SeqCst);
        let started = Instant::now();
        post_burst(args, &ingest.addr, &company_token, &template, round).await?;
        let burst = started.elapsed();
        let deadline = started + args.round_timeout;
        let times = loop {
            let reached = progress.reached.lock().unwrap().clone();
            if reached.len() == args.streams {
                break reached;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "round {round}: {} of {} streams had every alert after {:?}",
                reached.len(),
                args.streams,
                args.round_timeout
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let mut times: Vec<f64> = times
            .iter()
            .map(|at| at.saturating_duration_since(started).as_secs_f64() * 1000.0)
            .collect();
        times.sort_by(f64::total_cmp);
        let last = times.last().copied().unwrap_or(0.0);
        eprintln!(
            "round {round}{}: every stream after {last:.0} ms (median stream {:.0} ms, burst posted in {:.0} ms)",
            if round == 0 { " (warm-up)" } else { "" },
            times[times.len() / 2],
            burst.as_secs_f64() * 1000.0
        );
        if round > 0 {
            all.push(last);
            median.push(times[times.len() / 2]);
            bursts.push(burst.as_secs_f64() * 1000.0);
            measured += Duration::from_secs_f64(last / 1000.0);
        }
    }
    let cpu_after = cpu_seconds(stream_pid) + cpu_seconds(ingest.child.id());
    let rss = match &watched {
        Some(server) => server.rss_mb()?.0,
        None => ingest.rss_mb()?.0,
    };
    readers.abort_all();
    if let Some(server) = watched.as_mut() {
        server.stop()?;
    }
    ingest.stop()?;
    let mut sorted = all.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(Report {
        machine: machine(),
        server: binary.to_owned(),
        backend: database.backend(),
        across: args.across,
        all_p50_ms: sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
        all_max_ms: sorted.last().copied().unwrap_or(0.0),
        events_per_second: (args.streams * args.alerts * args.rounds) as f64
            / measured.as_secs_f64().max(1e-9),
        rounds_all_ms: all,
        rounds_median_stream_ms: median,
        rounds_burst_ms: bursts,
        server_cpu_seconds: cpu_after - cpu_before,
        server_rss_mb: rss,
    })
}

/// Reads one stream to its end, counting the alerts created; records when it has the round's.
async fn read_stream(
    addr: String,
    token: String,
    progress: Arc<Progress>,
    opened: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<()> {
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(Method::GET)
        .uri("/maestro/v4/inbox/stream")
        .header(header::HOST, "bench")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    anyhow::ensure!(response.status() == 200, "stream: {}", response.status());
    let mut body = response.into_body();
    let _ = opened.send(()).await;
    let mut count = 0u64;
    // The end of the previous chunk, in case a marker straddles two chunks.
    let mut carry: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame?.into_data() else {
            continue;
        };
        carry.extend_from_slice(&chunk);
        let before = count;
        count += memchr::memmem::find_iter(&carry, CREATED).count() as u64;
        let keep = carry.len().saturating_sub(CREATED.len() - 1);
        carry.drain(..keep);
        let target = progress.target.load(Ordering::SeqCst);
        if before < target && count >= target {
            progress.reached.lock().unwrap().push(Instant::now());
        }
    }
    Ok(())
}

/// Posts `alerts` alerts for the user on `connections` connections; every one must be a 200.
async fn post_burst(
    args: &Args,
    addr: &str,
    token: &str,
    template: &str,
    round: usize,
) -> anyhow::Result<()> {
    let mut posters = tokio::task::JoinSet::new();
    let per = args.alerts.div_ceil(args.connections.max(1));
    for connection in 0..args.connections.max(1) {
        let numbers: Vec<usize> = (connection * per..((connection + 1) * per).min(args.alerts))
            .map(|n| round * args.alerts + n)
            .collect();
        let (addr, token, template) = (addr.to_owned(), token.to_owned(), template.to_owned());
        posters.spawn(async move {
            let stream = TcpStream::connect(&addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            for n in numbers {
                let body = template.replace("__EXTREF__", &format!("stream-bench-{n}"));
                let request = Request::builder()
                    .method(Method::POST)
                    .uri("/maestro/v4/alerts")
                    .header(header::HOST, "bench")
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))?;
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status();
                let text = response.into_body().collect().await?.to_bytes();
                anyhow::ensure!(status == 200, "POST: {status} {text:?}");
            }
            anyhow::Ok(())
        });
    }
    for result in posters.join_all().await {
        result?;
    }
    Ok(())
}

/// The seed payload, fresh, with `__EXTREF__` to fill in.
fn payload_template() -> String {
    let seed = include_str!("../tests/fixtures/groundspan_post.json");
    let mut body: Value = serde_json::from_str(seed).expect("the seed fixture is JSON");
    let now = OffsetDateTime::now_utc();
    body["createdAt"] = json!(now.format(&Rfc3339).unwrap());
    body["expiresAt"] = json!((now + time::Duration::days(30)).format(&Rfc3339).unwrap());
    body["extRef"] = json!("__EXTREF__");
    serde_json::to_string(&body).unwrap()
}

fn render(args: &Args, report: &Report) -> String {
    let list = |values: &[f64]| {
        values
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "maestro streams benchmark — {} streams of one user, bursts of {} alerts on {} connections, \
         {} rounds, backend {}{}\nmachine: {}\n\n\
         every stream had every alert after: p50 {:.0} ms, max {:.0} ms (rounds: {} ms)\n\
         the median stream: {} ms; bursts posted in {} ms\n\
         {:.0} stream events/s; server CPU {:.1} s over every round (the warm-up too); RSS {:.0} MB\n",
        args.streams,
        args.alerts,
        args.connections,
        args.rounds,
        report.backend,
        if report.across {
            ", streams on a second instance"
        } else {
            ""
        },
        report.machine,
        report.all_p50_ms,
        report.all_max_ms,
        list(&report.rounds_all_ms),
        list(&report.rounds_median_stream_ms),
        list(&report.rounds_burst_ms),
        report.events_per_second,
        report.server_cpu_seconds,
        report.server_rss_mb,
    )
}
