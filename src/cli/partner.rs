//! `maestro partner check | import | list | show | rotate-secret | credentials`: partner
//! applications, their templates, their postback secrets and their OAuth2 client credentials.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use clap::Subcommand;
use time::OffsetDateTime;

use super::{
    client::{RotationArgs, print_credentials},
    output::{OutputArgs, or_dash},
};
use crate::{
    apps::Clients,
    auth::rotation::format_time,
    cli::existing_store,
    config::{DatabaseArgs, Layered},
    partners::bundle::{self, Checked},
    store::{DynStore, PartnerImport},
};

#[derive(Subcommand, Debug)]
pub enum PartnerCommand {
    /// Check a partner directory without importing it: every schema and render source
    /// compiles, and each template's example.json passes its schema and renders. Prints every
    /// problem, naming its file; exits 1 when there is any.
    Check { dir: PathBuf },
    /// Create or update a partner from a directory (partner.toml and templates/), after the
    /// same check as `partner check`: nothing changes when it finds a problem.
    Import {
        dir: PathBuf,
        #[command(flatten)]
        database: Layered<DatabaseArgs>,
    },
    /// List the registered partners: id, name, allowed URL domains, postback URL.
    List {
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        database: Layered<DatabaseArgs>,
    },
    /// Show a partner and its templates, without its secrets; with --secret, print its current
    /// postback secret (and nothing else) to hand over to the partner.
    Show {
        partner: String,
        /// Print only the current postback secret.
        #[arg(long)]
        secret: bool,
        #[command(flatten)]
        database: Layered<DatabaseArgs>,
    },
    /// Give the partner a new postback secret and print it (nothing else on stdout). Deliveries
    /// carry a signature with each secret until the previous one's grace period ends.
    RotateSecret {
        partner: String,
        /// How long the previous secret keeps signing deliveries, beside the new one.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        grace: Duration,
        #[command(flatten)]
        database: Layered<DatabaseArgs>,
    },
    /// Print the partner's OAuth2 client credentials as JSON ({"client_id", "client_secret"}):
    /// made the first time; the secret is shown once and kept only as a hash, so after that
    /// only --rotate makes (and shows) a new one.
    Credentials {
        partner: String,
        #[command(flatten)]
        rotation: RotationArgs,
        #[command(flatten)]
        database: Layered<DatabaseArgs>,
    },
}

pub async fn run(command: PartnerCommand) -> anyhow::Result<()> {
    match command {
        PartnerCommand::Check { dir } => {
            check(&dir)?;
            Ok(())
        }
        PartnerCommand::Import { dir, database } => {
            let import =
                check(&dir).map_err(|err| anyhow::anyhow!("{err:#}; nothing was imported"))?;
            let store = existing_store(&database).await?;
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
        PartnerCommand::List { output, database } => {
            let store = existing_store(&database).await?;
            let partners: Vec<ListedPartner> = store
                .partners()
                .await?
                .into_iter()
                .map(|partner| ListedPartner {
                    id: partner.id,
                    name: partner.name,
                    allowed_url_domains: partner.allowed_url_domains,
                    postback_url: partner.postback_url,
                })
                .collect();
            output.print(
                &partners,
                &["ID", "NAME", "URL DOMAINS", "POSTBACK URL"],
                |p| {
                    vec![
                        p.id.clone(),
                        p.name.clone(),
                        p.allowed_url_domains.join(","),
                        or_dash(p.postback_url.as_deref()),
                    ]
                },
            )
        }
        PartnerCommand::Credentials {
            partner,
            rotation,
            database,
        } => {
            let clients = Clients::new(existing_store(&database).await?);
            let credentials = clients
                .partner_credentials(&partner, rotation.rotation())
                .await?;
            print_credentials(&credentials)
        }
        PartnerCommand::Show {
            partner,
            secret,
            database,
        } => show(&existing_store(&database).await?, &partner, secret).await,
        PartnerCommand::RotateSecret {
            partner,
            grace,
            database,
        } => {
            let store = existing_store(&database).await?;
            let secret = bundle::generate_secret();
            let previous_until = OffsetDateTime::now_utc() + grace;
            if !store
                .rotate_postback_secret(&partner, &secret, previous_until)
                .await?
            {
                anyhow::bail!("there is no partner {partner}");
            }
            println!("{secret}");
            eprintln!(
                "the previous secret also signs deliveries until {}",
                format_time(previous_until)
            );
            Ok(())
        }
    }
}

/// A partner as `partner list --output json` shows it: no secret.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedPartner {
    id: String,
    name: String,
    allowed_url_domains: Vec<String>,
    postback_url: Option<String>,
}

/// Checks a partner directory and prints what the check found: problems and warnings on
/// stderr, a line per template whose example rendered on stdout. The import when there is no
/// problem; otherwise an error that counts them.
fn check(dir: &Path) -> anyhow::Result<PartnerImport> {
    let Checked { report, import } = bundle::check_dir(dir)?;
    for problem in &report.problems {
        eprintln!("{problem}");
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for (template, title) in &report.rendered {
        println!("templates/{template}: ok (example.json renders {title:?})");
    }
    import.with_context(|| {
        let count = report.problems.len();
        format!(
            "{}: {count} problem{}",
            dir.display(),
            if count == 1 { "" } else { "s" }
        )
    })
}

async fn show(store: &DynStore, partner_id: &str, secret_only: bool) -> anyhow::Result<()> {
    let (partner, templates) = store
        .partner_with_templates(partner_id)
        .await?
        .with_context(|| format!("there is no partner {partner_id}"))?;
    if secret_only {
        println!("{}", partner.postback_secret);
        return Ok(());
    }
    println!("id\t{}", partner.id);
    println!("name\t{}", partner.name);
    println!(
        "allowed_url_domains\t{}",
        partner.allowed_url_domains.join(",")
    );
    println!(
        "postback_url\t{}",
        partner.postback_url.as_deref().unwrap_or("-")
    );
    let grace = partner.previous_secret_until.filter(|until| {
        *until > OffsetDateTime::now_utc() && partner.previous_postback_secret.is_some()
    });
    if let Some(until) = grace {
        println!("previous_secret_valid_until\t{}", format_time(until));
    }
    if let Some(limit) = partner.rate_limit {
        println!("rate_limit\t{}/s, burst {}", limit.per_second, limit.burst);
    }
    for template in templates {
        println!("template\t{} v{}", template.template_id, template.version);
    }
    Ok(())
}
