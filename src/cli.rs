//! The command line: `maestro serve | migrate | token issue | partner import | partner list |
//! event publish | inbox open-url | delivery list | delivery show | delivery replay`.
//! These names and flags are a public interface that operators script; keep them stable.

use std::{path::PathBuf, process::ExitCode};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::{
    App, Settings,
    app::open_store,
    auth::{KeyRing, TokenKind, signing},
    config::DatabaseArgs,
    partners::bundle,
};

#[derive(Parser, Debug)]
#[command(
    name = "maestro",
    version,
    about = "Self-hostable partner notification platform"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command line and the `MAESTRO_*` variables; a variable set to the empty string counts
    /// as unset (container environments write `VAR=` for "not given").
    pub fn from_env() -> Cli {
        let matches = without_empty_env(Cli::command()).get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
    }
}

/// `command` with every argument whose variable is set but empty made to ignore the variable.
pub fn without_empty_env(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| {
            let empty = arg
                .get_env()
                .and_then(std::env::var_os)
                .is_some_and(|value| value.is_empty());
            if empty {
                arg.env(clap::builder::Resettable::Reset)
            } else {
                arg
            }
        })
        .mut_subcommands(without_empty_env)
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP API and the background workers (delivery, the inbox feed, the expiry
    /// sweeper); `--role` picks.
    Serve(Box<Settings>),
    /// Create or upgrade the database schema, then exit.
    Migrate(DatabaseArgs),
    /// Tokens signed with the server's own key.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Partner applications and their templates.
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Company events (legacy v1.0 notifications).
    #[command(subcommand)]
    Event(EventCommand),
    /// Deliveries of company notifications to partners: list, inspect, replay.
    #[command(subcommand)]
    Delivery(DeliveryCommand),
    /// The user inbox page.
    #[command(subcommand)]
    Inbox(InboxCommand),
}

#[derive(Subcommand, Debug)]
pub enum InboxCommand {
    /// Print a link (and nothing else) that signs USER of COMPANY in to the inbox page. The link
    /// is short-lived and can only be exchanged for the page's session cookie.
    OpenUrl(OpenUrlArgs),
}

#[derive(clap::Args, Debug)]
pub struct OpenUrlArgs {
    /// The user id (as partners send it in `userId`).
    #[arg(long)]
    pub user: String,
    /// The user's company id.
    #[arg(long)]
    pub company: String,
    /// How long the link may be used.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
    /// The server's address as the browser reaches it; the link points there.
    #[arg(
        long,
        env = "MAESTRO_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Subcommand, Debug)]
pub enum DeliveryCommand {
    /// Deliveries, newest first: id, status, attempts, partner, type, event, last HTTP status,
    /// next attempt.
    List {
        /// pending, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        partner: Option<String>,
        #[arg(long, default_value_t = crate::notifications::admin::DEFAULT_LIST_LIMIT)]
        limit: i64,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// One delivery and every attempt: time, HTTP status, latency, outcome, error, answer.
    Show {
        id: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Make a failed (or delivered) delivery pending again, due now, with the same webhook-id.
    Replay {
        id: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventCommand {
    /// Record a company event (the JSON body of POST /internal/v1/company-events, from FILE or
    /// standard input) with one delivery per matching subscription; prints the event id and
    /// the number of deliveries.
    Publish {
        /// A JSON file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Print a token (and nothing else) signed with the server's key.
    Issue(IssueArgs),
}

#[derive(clap::Args, Debug)]
pub struct IssueArgs {
    #[arg(long = "type", value_enum)]
    pub kind: TokenKind,
    /// Company id (company token), user id (user token) or application id (app token).
    #[arg(long)]
    pub subject: String,
    /// The partner application (concur.appId).
    #[arg(long)]
    pub app: Option<String>,
    /// A scope; repeat for several.
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// The user's company (user tokens).
    #[arg(long)]
    pub company: Option<String>,
    /// A role of the user; repeat for several.
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: i64,
    /// Written into the token's `iss` claim.
    #[arg(
        long,
        env = "MAESTRO_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Subcommand, Debug)]
pub enum PartnerCommand {
    /// Create or update a partner from a directory (partner.toml and templates/).
    Import {
        dir: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List the registered partners.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// Runs a command; errors are printed to stderr with a non-zero exit.
pub fn run(cli: Cli) -> ExitCode {
    let _log_flush = crate::telemetry::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(settings) => serve(*settings).await,
        Command::Migrate(database) => {
            open_store(&database).await?;
            eprintln!("database is up to date");
            Ok(())
        }
        Command::Token(TokenCommand::Issue(args)) => {
            let store = open_store(&args.database).await?;
            let keys = signing::ensure_server_keys(&store).await?;
            let keyring = KeyRing::new(&keys, None)?;
            let request = signing::TokenRequest {
                kind: args.kind,
                subject: args.subject,
                app_id: args.app,
                scopes: args.scopes,
                company: args.company,
                roles: args.roles,
                ttl_secs: args.ttl,
            };
            println!("{}", keyring.sign(&request.claims(&args.public_url)?)?);
            Ok(())
        }
        Command::Partner(PartnerCommand::Import { dir, database }) => {
            let import = bundle::from_dir(&dir)?;
            let store = open_store(&database).await?;
            let report = store.import_partner(&import).await?;
            println!(
                "{} partner {}",
                if report.created { "created" } else { "updated" },
                report.partner_id
            );
            for (template, version, changed) in report.templates {
                let state = if changed { "new version" } else { "unchanged" };
                println!("  template {template} v{version} ({state})");
            }
            Ok(())
        }
        Command::Event(EventCommand::Publish { file, database }) => {
            let text = match file.as_deref() {
                None => std::io::read_to_string(std::io::stdin())?,
                Some(path) if path.as_os_str() == "-" => std::io::read_to_string(std::io::stdin())?,
                Some(path) => std::fs::read_to_string(path)?,
            };
            let event = crate::input::read_json(text.as_bytes())
                .and_then(|body| {
                    crate::notifications::events::parse(&body, time::OffsetDateTime::now_utc())
                })
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            let store = open_store(&database).await?;
            let recorded = crate::notifications::EventIntake::new(store, None)
                .record(event)
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            println!(
                "{}\t{} deliveries",
                recorded.event_id,
                recorded.deliveries.len()
            );
            Ok(())
        }
        Command::Delivery(command) => delivery(command).await,
        Command::Inbox(InboxCommand::OpenUrl(args)) => {
            let store = open_store(&args.database).await?;
            let keys = signing::ensure_server_keys(&store).await?;
            let keyring = KeyRing::new(&keys, None)?;
            println!(
                "{}",
                crate::inbox::login::sign_in_link(
                    &keyring,
                    &args.public_url,
                    &args.user,
                    &args.company,
                    args.ttl,
                )?
            );
            Ok(())
        }
        Command::Partner(PartnerCommand::List { database }) => {
            let store = open_store(&database).await?;
            for partner in store.partners().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    partner.id,
                    partner.name,
                    partner.allowed_url_domains.join(","),
                    partner.postback_url.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
    }
}

async fn delivery(command: DeliveryCommand) -> anyhow::Result<()> {
    use std::sync::Arc;

    use crate::{clock::Clock, notifications::DeliveryAdmin};
    let domain = |err: crate::Error| anyhow::anyhow!("{err}");
    let show_time = |at: Option<time::OffsetDateTime>| {
        at.and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".to_owned())
    };
    let line = |d: &crate::store::DeliverySummary| {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            d.id,
            d.status,
            d.attempts,
            d.partner_id,
            d.object_type,
            d.event_type,
            d.last_status.map_or("-".to_owned(), |s| s.to_string()),
            show_time(d.next_attempt_at),
        )
    };
    match command {
        DeliveryCommand::List {
            status,
            partner,
            limit,
            database,
        } => {
            let admin = DeliveryAdmin::new(
                open_store(&database).await?,
                None,
                Arc::new(Clock::system()),
            );
            let deliveries = admin
                .list(status.as_deref(), partner.as_deref(), Some(limit))
                .await
                .map_err(domain)?;
            for delivery in &deliveries {
                println!("{}", line(delivery));
            }
        }
        DeliveryCommand::Show { id, database } => {
            let admin = DeliveryAdmin::new(
                open_store(&database).await?,
                None,
                Arc::new(Clock::system()),
            );
            let (delivery, attempts) = admin.show(&id).await.map_err(domain)?;
            println!("{}", line(&delivery));
            if let Some(error) = &delivery.last_error {
                println!("last error: {error}");
            }
            for a in attempts {
                println!(
                    "  #{}\t{}\t{}\t{} ms\t{}\t{}\t{}",
                    a.attempt,
                    show_time(Some(a.started_at)),
                    a.status_code.map_or("-".to_owned(), |s| s.to_string()),
                    a.duration_ms,
                    a.outcome,
                    a.error.as_deref().unwrap_or("-"),
                    a.response_body.as_deref().unwrap_or("").replace('\n', " "),
                );
            }
        }
        DeliveryCommand::Replay { id, database } => {
            // A running server's worker picks it up within its poll interval.
            let admin = DeliveryAdmin::new(
                open_store(&database).await?,
                None,
                Arc::new(Clock::system()),
            );
            let delivery = admin.replay(&id).await.map_err(domain)?;
            println!("{}", line(&delivery));
        }
    }
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&settings.listen).await?;
    let app = App::open(settings).await?;
    // The handlers are installed before "listening" is announced: a SIGTERM sent as soon as the
    // server says it is up must stop it gracefully, not kill it with the default action.
    let shutdown = shutdown_signal()?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    crate::serve(app, listener, shutdown).await
}

/// Installs the SIGINT and SIGTERM handlers now; the future completes on either signal.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
