//! Ingestion benchmark: starts the release `maestro` on a fresh database, drives
//! `POST /maestro/v4/alerts` (the Groundspan seed payload, a distinct extRef per request) and then
//! `PUT` updates at a chosen number of connections for a chosen time, and reports accepted
//! alerts/s, latency percentiles, errors by status, the server's RSS, and the `/healthz` ceiling of
//! the HTTP stack on the same machine.
//!
//! The client runs on `--client-threads` threads (default 2): a single-threaded client stops
//! sending while it reads answers, so a server stall shows there as a lull in its load rather
//! than in its latencies. `--distinct-metadata` gives every alert a price of its own, so that no
//! alert reuses another's checked metadata or rendering: a partner's fan-out at its worst.
//!
//! ```text
//! cargo bench --bench ingest -- --connections 64 --duration 10s
//! cargo bench --bench ingest -- --preload 1000000
//! cargo bench --bench ingest -- --preload 5000000 --wrk      # wrk's view too (Debian's wrk)
//! cargo bench --bench ingest -- --distinct-metadata --client-threads 2
//! cargo bench --bench ingest -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench --bench ingest -- --nats nats://127.0.0.1:4222 [--nats-backlog]
//! ```

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use clap::Parser;

#[path = "ingest/load.rs"]
mod load;
#[path = "ingest/nats.rs"]
mod nats;
#[path = "shared/preload.rs"]
mod preload;
#[path = "support/server.rs"]
mod server;
#[path = "ingest/wrk.rs"]
mod wrk;

use load::{Kind, Target, measure, payload_template};
use server::{
    Database, Server, issue_token, machine, master_key, migrate, postgres_cpu_seconds,
    stat_cpu_seconds,
};

#[derive(Parser, Debug)]
#[command(about = "maestro ingestion benchmark")]
struct Args {
    /// Concurrent HTTP/1.1 connections, each sending one request at a time.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Threads of the load generator's runtime, over which the connections are spread.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Every alert created with metadata of its own (a distinct price), so that no validation
    /// or rendering is shared with another alert.
    #[arg(long)]
    distinct_metadata: bool,
    /// How long each measured phase runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured load before each phase.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Alerts stored before the run starts (inserted in bulk, not through the API).
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// Run against PostgreSQL: a server URL; a fresh database is created on it and dropped after.
    #[arg(long)]
    postgres: Option<String>,
    /// Write the report as JSON here as well.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the server's log here (default: discarded with the temporary directory).
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Run this `maestro` binary instead of the one built with the benchmark: runs of two
    /// builds alternated on one machine compare them despite its noise.
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Publish to NATS JetStream at this URL while loading (a stream of the run's own): reports
    /// the publishing lag during each phase and the events published per second.
    #[arg(long)]
    nats: Option<String>,
    /// With `--nats`: load without publishing, then start a server that publishes the backlog,
    /// and time how fast it drains it.
    #[arg(long, requires = "nats")]
    nats_backlog: bool,
    /// After the harness's POST phase, the same load from wrk (Debian's package) against the
    /// same server and database: an independent load generator's view at any preload.
    #[arg(long)]
    wrk: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const COMPANY: &str = "b7d12989-0489-471a-81cd-175f8b78afa5";

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
    /// The server binary that was measured.
    server: String,
    backend: &'static str,
    preloaded: u64,
    healthz: Phase,
    create: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    create_by_wrk: Option<Phase>,
    update: Phase,
    create_vs_healthz: f64,
    server_rss_mb: f64,
    server_peak_rss_mb: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nats: Option<nats::NatsReport>,
}

#[derive(serde::Serialize, Default)]
struct Phase {
    requests: u64,
    ok_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors_by_status: BTreeMap<u16, u64>,
    /// CPU time (user + system) the server spent per request of the measured period, in µs.
    server_cpu_us_per_request: f64,
    /// The same for this load generator, which shares the machine.
    client_cpu_us_per_request: f64,
    /// The same for the PostgreSQL server (every process named `postgres` on this machine,
    /// which other clients of that server add to); 0 on SQLite, which runs in the server.
    database_cpu_us_per_request: f64,
    /// Bytes the server sent towards the disk per request (`write_bytes` of `/proc/<pid>/io`), KB.
    server_disk_kb_per_request: f64,
}

/// What a process has used so far: CPU seconds and bytes written towards the disk.
#[derive(Clone, Copy)]
struct Usage {
    cpu_seconds: f64,
    disk_bytes: f64,
}

impl Usage {
    fn of(pid: &str) -> Usage {
        let cpu_seconds = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat_cpu_seconds(&stat))
            .unwrap_or(f64::NAN);
        let disk_bytes = std::fs::read_to_string(format!("/proc/{pid}/io"))
            .ok()
            .and_then(|io| {
                io.lines()
                    .find_map(|l| l.strip_prefix("write_bytes:"))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(f64::NAN);
        Usage {
            cpu_seconds,
            disk_bytes,
        }
    }
}

async fn run(args: &Args, database: &Database, dir: &Path) -> anyhow::Result<Report> {
    let binary = args
        .binary
        .as_deref()
        .and_then(Path::to_str)
        .unwrap_or(env!("CARGO_BIN_EXE_maestro"));
    let master_key = master_key();
    migrate(binary, &database.url, &master_key)?;
    if args.preload > 0 {
        let started = Instant::now();
        preload::preload(&database.url, args.preload).await?;
        eprintln!(
            "preloaded {} alerts in {:.1?}",
            args.preload,
            started.elapsed()
        );
    }
    let log = args
        .server_log
        .clone()
        .unwrap_or_else(|| dir.join("server.log"));
    let nats_run = args.nats.as_deref().map(nats::NatsRun::new);
    let publishing = match (&nats_run, args.nats_backlog) {
        (Some(run), false) => run.env(),
        _ => Vec::new(),
    };
    let mut server = Server::start(binary, &database.url, &master_key, &log, &publishing)?;
    let token = issue_token(
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
            "--scope",
            "maestro.alerts.writeonly",
        ],
    )?;

    let target = Target {
        addr: server.addr.clone(),
        server_pid: server.child.id().to_string(),
        token,
        template: payload_template(),
        postgres: args.postgres.is_some(),
    };
    eprintln!("GET /healthz...");
    let (healthz, _) = measure(args, &target, Kind::Healthz, &[]).await?;
    let mut nats_report = nats_run.as_ref().map(|_| nats::NatsReport::default());
    let sampling = nats_report.is_some() && !args.nats_backlog;
    eprintln!("POST /maestro/v4/alerts...");
    let sampler = match sampling {
        true => Some(nats::Sampler::start(&target.addr).await),
        false => None,
    };
    let (create, created) = measure(args, &target, Kind::Create, &[]).await?;
    if let (Some(sampler), Some(report)) = (sampler, nats_report.as_mut()) {
        (report.create_lag, report.create_published_per_second) =
            sampler.finish(&target.addr).await?;
    }
    let create_by_wrk = match args.wrk {
        true => {
            eprintln!("POST /maestro/v4/alerts by wrk...");
            let (threads, connections) = (args.client_threads, args.connections);
            Some(wrk::measure(
                &target,
                threads,
                connections,
                args.duration,
                dir,
            )?)
        }
        false => None,
    };
    eprintln!("PUT /maestro/v4/alerts...");
    let sampler = match sampling {
        true => Some(nats::Sampler::start(&target.addr).await),
        false => None,
    };
    let (update, _) = measure(args, &target, Kind::Update, &created).await?;
    if let (Some(sampler), Some(report)) = (sampler, nats_report.as_mut()) {
        (report.update_lag, report.update_published_per_second) =
            sampler.finish(&target.addr).await?;
        report.caught_up_after_s =
            nats::until_caught_up(&target.addr, Duration::from_secs(120)).await;
    }
    let (rss, peak) = server.rss_mb()?;
    server.stop()?;
    if let (Some(run), Some(report), true) = (&nats_run, nats_report.as_mut(), args.nats_backlog) {
        eprintln!("publishing the backlog...");
        let mut server = Server::start(binary, &database.url, &master_key, &log, &run.env())?;
        report.backlog_drained_s =
            nats::until_caught_up(&server.addr, Duration::from_secs(600)).await;
        report.backlog_events = nats::published(&server.addr).await;
        report.backlog_per_second = report.backlog_events / report.backlog_drained_s;
        server.stop()?;
    }
    if let Some(run) = &nats_run {
        run.delete().await?;
    }
    Ok(Report {
        machine: machine(),
        server: binary.to_owned(),
        backend: database.backend(),
        preloaded: args.preload,
        create_vs_healthz: create.ok_per_second / healthz.ok_per_second.max(1.0),
        healthz,
        create,
        create_by_wrk,
        update,
        server_rss_mb: rss,
        server_peak_rss_mb: peak,
        nats: nats_report,
    })
}

fn render(args: &Args, report: &Report) -> String {
    let mut out = format!(
        "maestro ingest benchmark — {} connections on {} client threads, {:?} per phase, backend {}, {} alerts preloaded{}\n\
         machine: {}\n\n\
         | phase | ok/s | p50 ms | p99 ms | max ms | errors | server CPU µs/req | client CPU µs/req | server disk KB/req | PostgreSQL CPU µs/req |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        args.connections,
        args.client_threads,
        args.duration,
        report.backend,
        report.preloaded,
        if args.distinct_metadata {
            ", distinct metadata in every alert"
        } else {
            ""
        },
        report.machine
    );
    let phases = [
        ("GET /healthz", Some(&report.healthz)),
        ("POST alerts", Some(&report.create)),
        ("POST alerts by wrk", report.create_by_wrk.as_ref()),
        ("PUT alerts", Some(&report.update)),
    ];
    for (name, phase) in phases.into_iter().filter_map(|(n, p)| Some((n, p?))) {
        let errors = if phase.errors_by_status.is_empty() {
            "none".to_owned()
        } else {
            phase
                .errors_by_status
                .iter()
                .map(|(s, n)| format!("{s}×{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        out.push_str(&format!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {errors} | {:.0} | {:.0} | {:.1} | {:.0} |\n",
            phase.ok_per_second,
            phase.p50_ms,
            phase.p99_ms,
            phase.max_ms,
            phase.server_cpu_us_per_request,
            phase.client_cpu_us_per_request,
            phase.server_disk_kb_per_request,
            phase.database_cpu_us_per_request
        ));
    }
    out.push_str(&format!(
        "\nPOST / healthz ceiling: {:.2}; server RSS {:.1} MB (peak {:.1} MB)\n",
        report.create_vs_healthz, report.server_rss_mb, report.server_peak_rss_mb
    ));
    if let Some(nats) = &report.nats {
        if args.nats_backlog {
            out.push_str(&format!(
                "NATS: a backlog of {:.0} events published in {:.2} s: {:.0} events/s\n",
                nats.backlog_events, nats.backlog_drained_s, nats.backlog_per_second
            ));
        } else {
            for (name, lag, rate) in [
                ("POST", nats.create_lag, nats.create_published_per_second),
                ("PUT", nats.update_lag, nats.update_published_per_second),
            ] {
                out.push_str(&format!(
                    "NATS during {name}: {rate:.0} events/s published; lag p50 {:.2} s, p99 {:.2} s, \
                     max {:.2} s ({} samples)\n",
                    lag.p50_s, lag.p99_s, lag.max_s, lag.samples
                ));
            }
            out.push_str(&format!(
                "NATS: caught up {:.2} s after the load ended\n",
                nats.caught_up_after_s
            ));
        }
    }
    out
}
