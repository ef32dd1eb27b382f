//! `maestro keys list | rotate | retire`: the server's token signing keys.

use clap::Subcommand;

use super::output::{OutputArgs, or_dash};
use crate::{
    auth::rotation::{self, Retired, format_time},
    cli::existing_store,
    config::{DatabaseArgs, Layered},
};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List the signing keys: kid, algorithm, created, state (signing, verifying, retired) and
    /// until when tokens it signed may be live.
    List {
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        database: Layered<DatabaseArgs>,
    },
    /// Add a new RS256 key, which signs from now on (running instances switch within
    /// MAESTRO_CATALOG_REFRESH); the older keys keep verifying and stay in the JWKS. Prints the
    /// new key's id.
    Rotate {
        #[command(flatten)]
        database: Layered<DatabaseArgs>,
    },
    /// Stop trusting a key: tokens it signed are refused and it leaves the JWKS. Refused for
    /// the key that signs, and while tokens it signed may still be live, unless --force.
    Retire {
        kid: String,
        /// Retire it even though tokens it signed may still be live: they will be refused.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        database: Layered<DatabaseArgs>,
    },
}

/// A key as `keys list --output json` shows it: never its private part.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedKey {
    kid: String,
    algorithm: String,
    created_at: String,
    state: &'static str,
    /// Until when a token it signed may be accepted (`null`: it signed none, or see
    /// `lifetimeUnknown`).
    tokens_live_until: Option<String>,
    /// It signed tokens before maestro recorded their lifetimes.
    lifetime_unknown: bool,
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List { output, database } => {
            let store = existing_store(&database).await?;
            let keys: Vec<ListedKey> = rotation::list(&store)
                .await?
                .into_iter()
                .map(|key| ListedKey {
                    kid: key.kid,
                    algorithm: key.algorithm,
                    created_at: format_time(key.created_at),
                    state: key.state.as_str(),
                    tokens_live_until: key.tokens_live_until.map(format_time),
                    lifetime_unknown: key.lifetime_unknown,
                })
                .collect();
            let headers = ["KID", "ALGORITHM", "CREATED", "STATE", "TOKENS LIVE UNTIL"];
            output.print(&keys, &headers, |key| {
                let live_until = match key.lifetime_unknown {
                    true => "unknown".to_owned(),
                    false => or_dash(key.tokens_live_until.as_deref()),
                };
                vec![
                    key.kid.clone(),
                    key.algorithm.clone(),
                    key.created_at.clone(),
                    key.state.to_owned(),
                    live_until,
                ]
            })
        }
        KeysCommand::Rotate { database } => {
            let store = existing_store(&database).await?;
            println!("{}", rotation::rotate(&store).await?);
            Ok(())
        }
        KeysCommand::Retire {
            kid,
            force,
            database,
        } => {
            let store = existing_store(&database).await?;
            match rotation::retire(&store, &kid, force).await? {
                Retired::Now => eprintln!("retired {kid}"),
                Retired::Already => eprintln!("{kid} was retired already"),
            }
            Ok(())
        }
    }
}
