//! The command line: `maestro serve | migrate | backup | config show | completions |
//! token issue | keys list | keys rotate | keys retire | partner import | partner list |
//! partner show | partner rotate-secret | event publish | inbox open-url | delivery list |
//! delivery show | delivery replay`. These names and flags are a public interface that
//! operators script; keep them stable.

mod backup;
mod client;
mod delivery;
mod event;
mod inbox;
mod keys;
mod output;
mod partner;
mod token;

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use client::ClientCommand;
pub use delivery::DeliveryCommand;
pub use event::EventCommand;
pub use inbox::{InboxCommand, OpenUrlArgs};
pub use keys::KeysCommand;
pub use partner::PartnerCommand;
pub use token::{IssueArgs, TokenCommand};

use crate::{
    App, Settings,
    app::open_store,
    config::{DatabaseArgs, Layered, Role},
    store::{DynStore, Open},
};

#[derive(Parser, Debug)]
#[command(
    name = "maestro",
    version,
    about = "Self-hostable partner notification platform"
)]
pub struct Cli {
    /// A TOML file of settings, keyed like the flags with `_` for `-` (see
    /// maestro.example.toml). Flags win over MAESTRO_* variables, which win over the file.
    #[arg(long, global = true, env = "MAESTRO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command line, the configuration file and the `MAESTRO_*` variables, each setting
    /// layered as `config::layers` says; a variable set to the empty string counts as unset
    /// (container environments write `VAR=` for "not given").
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
    Serve(Box<Layered<Settings>>),
    /// Create or upgrade the database schema, then exit.
    Migrate(Layered<DatabaseArgs>),
    /// Write a consistent copy of the SQLite database (and its key file) while the server runs.
    Backup(backup::BackupArgs),
    /// The configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a completion script for a shell (e.g. `maestro completions bash >
    /// /etc/bash_completion.d/maestro`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
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

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the effective configuration of `maestro serve` (with the same flags) as TOML,
    /// each value with where it came from; secrets are left out.
    Show(Box<Layered<Settings>>),
}

/// Opens a database that must exist already: every command but `serve` and `migrate`.
pub(crate) async fn existing_store(database: &DatabaseArgs) -> anyhow::Result<DynStore> {
    open_store(database, Open::Existing).await
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
        Command::Serve(settings) => serve(settings.into_inner()).await,
        Command::Migrate(database) => {
            open_store(&database, Open::CreateIfMissing).await?;
            eprintln!("database is up to date");
            Ok(())
        }
        Command::Backup(args) => backup::run(args).await,
        Command::Config(ConfigCommand::Show(settings)) => {
            print!("{}", crate::config::show::render(&settings)?);
            Ok(())
        }
        Command::Completions { shell } => {
            // Written whole, so that a closed pipe (`| head`) is an error, not a panic.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "maestro", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
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
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    warn_of_unknown_variables();
    let app = App::open(settings).await?;
    if app.settings.role != Role::All && !app.store.shared_by_instances() {
        // Processes sharing one SQLite file take turns at its one write lock: the intake of an
        // API instance outruns the worker of another (docs/PERFORMANCE.md).
        tracing::warn!(
            role = ?app.settings.role,
            "on SQLite, API and worker instances contend for the database's one write lock and \
             deliveries fall behind; run one instance with --role all, or use PostgreSQL"
        );
    }
    // The handlers are installed before "listening" is announced: a SIGTERM sent as soon as the
    // server says it is up must stop it gracefully, not kill it with the default action.
    let mut signals = Signals::install()?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let (first, shutdown) = tokio::sync::oneshot::channel();
    let draining = app.clone();
    tokio::spawn(async move {
        signals.next().await;
        let _ = first.send(());
        // A second signal (Ctrl-C again, at a terminal) cuts the drain short.
        signals.next().await;
        draining.end_drain();
    });
    crate::serve(app, listener, async {
        let _ = shutdown.await;
    })
    .await
}

/// A `MAESTRO_*` variable that is no setting is most likely a misspelt one: said once, at
/// start-up. (It is not refused: other tools, and maestro's tests, share the prefix.)
fn warn_of_unknown_variables() {
    let known: Vec<String> = crate::config::declared::<Settings>()
        .into_iter()
        .map(|setting| setting.variable)
        .chain(["MAESTRO_CONFIG".to_owned()])
        .collect();
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("MAESTRO_") && !known.iter().any(|known| *known == name) {
            tracing::warn!(variable = %name, "a MAESTRO_ variable that is no setting of maestro serve; ignored");
        }
    }
}

/// The SIGINT and SIGTERM handlers, installed when made.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Completes on the next SIGINT or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
