//! `maestro client create`: internal producers of company events as OAuth2 clients, and the
//! rotation flags `partner credentials` shares.

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::{
    apps::{Clients, Credentials, Rotation},
    cli::existing_store,
    config::{DatabaseArgs, Layered},
};

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register an internal producer (a client without a partner) and print its credentials
    /// as JSON ({"client_id", "client_secret"}); the secret is shown this once.
    Create {
        /// The client id (lowercase letters, digits, '-', '_', '.').
        id: String,
        /// A scope the client may be granted; repeat for several (e.g. maestro.events.publish).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[command(flatten)]
        rotation: RotationArgs,
        #[command(flatten)]
        database: Layered<DatabaseArgs>,
    },
}

/// How an existing client gets a new secret.
#[derive(Args, Debug)]
pub struct RotationArgs {
    /// Make a new secret for a client that has one.
    #[arg(long)]
    pub rotate: bool,
    /// How long the current secret keeps working after --rotate.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// With --rotate: the current secret stops at once, and every token issued to the client so
    /// far is refused (a leaked secret).
    #[arg(long, requires = "rotate")]
    pub revoke_tokens: bool,
}

impl RotationArgs {
    pub fn rotation(&self) -> Option<Rotation> {
        self.rotate.then_some(Rotation {
            grace: self.grace,
            revoke_tokens: self.revoke_tokens,
        })
    }
}

/// The credentials, and nothing else, on standard output.
pub fn print_credentials(credentials: &Credentials) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(credentials)?);
    Ok(())
}

pub async fn run(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create {
            id,
            scopes,
            rotation,
            database,
        } => {
            anyhow::ensure!(
                !id.is_empty()
                    && id.len() <= 64
                    && id.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
                    }),
                "client id {id:?} must be 1-64 lowercase letters, digits, '-', '_' or '.'"
            );
            anyhow::ensure!(
                !scopes.is_empty() || rotation.rotate,
                "a client needs at least one --scope (e.g. maestro.events.publish)"
            );
            let clients = Clients::new(existing_store(&database).await?);
            let credentials = clients
                .internal_credentials(&id, &scopes, rotation.rotation())
                .await?;
            print_credentials(&credentials)
        }
    }
}
