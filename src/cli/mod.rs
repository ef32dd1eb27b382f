//! The command line: `maestro serve | migrate | token issue | keys list | keys rotate |
//! keys retire | partner import | partner list | partner show | partner rotate-secret |
//! event publish | inbox open-url | delivery list | delivery show | delivery replay`.
//! These names and flags are a public interface that operators script; keep them stable.

mod client;
mod delivery;
mod event;
mod inbox;
mod keys;
mod partner;
mod token;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use client::ClientCommand;
pub use delivery::DeliveryCommand;
pub use event::EventCommand;
pub use inbox::{InboxCommand, OpenUrlArgs};
pub use keys::KeysCommand;
pub use partner::PartnerCommand;
pub use token::{IssueArgs, TokenCommand};

use crate::{App, Settings, app::open_store, config::DatabaseArgs};

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
    /// The server's token signing keys: list, rotate, retire.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Partner applications and their templates.
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// OAuth2 clients that are not partners: internal producers of company events.
    #[command(subcommand)]
    Client(ClientCommand),
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

/// Runs a command; errors are printed to stderr with a non-zero exit.
pub fn run(cli: Cli) -> ExitCode {
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
    // Only the server exports traces; the other commands are short and their work is logged.
    let traces = match &cli.command {
        Command::Serve(_) => crate::telemetry::traces::Traces::from_env(runtime.handle().clone()),
        _ => Ok(None),
    };
    let traces = match traces {
        Ok(traces) => traces,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry = crate::telemetry::init(traces);
    let outcome = runtime.block_on(dispatch(cli.command));
    // The last spans are sent on the runtime, so before it stops.
    drop(telemetry);
    match outcome {
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
        Command::Token(command) => token::run(command).await,
        Command::Keys(command) => keys::run(command).await,
        Command::Partner(command) => partner::run(command).await,
        Command::Client(command) => client::run(command).await,
        Command::Event(command) => event::run(command).await,
        Command::Delivery(command) => delivery::run(command).await,
        Command::Inbox(command) => inbox::run(command).await,
    }
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
