//! `maestro partner import | list | credentials`: partner applications, their templates, and
//! their OAuth2 client credentials.

use std::path::PathBuf;

use clap::Subcommand;

use super::client::{RotationArgs, print_credentials};
use crate::{app::open_store, apps::Clients, config::DatabaseArgs, partners::bundle};

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
    /// Print the partner's OAuth2 client credentials as JSON ({"client_id", "client_secret"}):
    /// made the first time; the secret is shown once and kept only as a hash, so after that
    /// only --rotate makes (and shows) a new one.
    Credentials {
        partner: String,
        #[command(flatten)]
        rotation: RotationArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

pub async fn run(command: PartnerCommand) -> anyhow::Result<()> {
    match command {
        PartnerCommand::Import { dir, database } => {
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
        PartnerCommand::Credentials {
            partner,
            rotation,
            database,
        } => {
            let clients = Clients::new(open_store(&database).await?);
            let credentials = clients
                .partner_credentials(&partner, rotation.rotation())
                .await?;
            print_credentials(&credentials)
        }
        PartnerCommand::List { database } => {
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
