//! `maestro inbox open-url`: a sign-in link to a user's inbox page.

use clap::Subcommand;

use crate::{
    app::open_store,
    auth::{KeyRing, signing},
    config::DatabaseArgs,
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

pub async fn run(command: InboxCommand) -> anyhow::Result<()> {
    match command {
        InboxCommand::OpenUrl(args) => {
            let store = open_store(&args.database).await?;
            let keyring = KeyRing::new(signing::server_keys(&store).await?, None)?;
            let link = crate::inbox::login::sign_in_link(
                &store,
                &keyring,
                &args.public_url,
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
