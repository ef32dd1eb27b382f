//! `maestro inbox open-url`: a sign-in link to a user's inbox page.

use clap::Subcommand;

use crate::{
    auth::{KeyRing, signing},
    cli::existing_store,
    config::{DatabaseArgs, Layered, PublicUrl},
};

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
    // The server's public URL: the token's `iss`, or where the link points.
    #[command(flatten)]
    pub public: Layered<PublicUrl>,
    #[command(flatten)]
    pub database: Layered<DatabaseArgs>,
}

pub async fn run(command: InboxCommand) -> anyhow::Result<()> {
    match command {
        InboxCommand::OpenUrl(args) => {
            let store = existing_store(&args.database).await?;
            let keyring = KeyRing::new(signing::server_keys(&store).await?, None)?;
            let link = crate::inbox::login::sign_in_link(
                &store,
                &keyring,
                &args.public.public_url,
                &args.user,
                &args.company,
                args.ttl,
            )
            .await?;
            println!("{link}");
            Ok(())
        }
    }
}
