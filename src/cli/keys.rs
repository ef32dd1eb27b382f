//! `maestro keys list | rotate | retire`: the server's token signing keys.

use clap::Subcommand;

use crate::{
    app::open_store,
    auth::rotation::{self, Retired, format_time},
    config::DatabaseArgs,
};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List the signing keys: kid, algorithm, created, state (signing, verifying, retired) and
    /// until when tokens it signed may be live.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Add a new RS256 key, which signs from now on (running instances switch within
    /// MAESTRO_CATALOG_REFRESH); the older keys keep verifying and stay in the JWKS. Prints the
    /// new key's id.
    Rotate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Stop trusting a key: tokens it signed are refused and it leaves the JWKS. Refused for
    /// the key that signs, and while tokens it signed may still be live, unless --force.
    Retire {
        kid: String,
        /// Retire it even though tokens it signed may still be live: they will be refused.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List { database } => {
            let store = open_store(&database).await?;
            for key in rotation::list(&store).await? {
                let live_until = match (key.lifetime_unknown, key.tokens_live_until) {
                    (true, _) => "unknown".to_owned(),
                    (false, Some(until)) => format_time(until),
                    (false, None) => "-".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\t{}\t{live_until}",
                    key.kid,
                    key.algorithm,
                    format_time(key.created_at),
                    key.state.as_str()
                );
            }
            Ok(())
        }
        KeysCommand::Rotate { database } => {
            let store = open_store(&database).await?;
            println!("{}", rotation::rotate(&store).await?);
            Ok(())
        }
        KeysCommand::Retire {
            kid,
            force,
            database,
        } => {
            let store = open_store(&database).await?;
            match rotation::retire(&store, &kid, force).await? {
                Retired::Now => eprintln!("retired {kid}"),
                Retired::Already => eprintln!("{kid} was retired already"),
            }
            Ok(())
        }
    }
}
