//! `maestro token issue`: the operator's tool for a token signed with the server's own key.

use clap::Subcommand;

use crate::{
    auth::{KeyRing, TokenKind, signing},
    cli::existing_store,
    config::{DatabaseArgs, Layered, PublicUrl},
};

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
    // The server's public URL: the token's `iss`, or where the link points.
    #[command(flatten)]
    pub public: Layered<PublicUrl>,
    #[command(flatten)]
    pub database: Layered<DatabaseArgs>,
}

pub async fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Issue(args) => {
            let store = existing_store(&args.database).await?;
            let keyring = KeyRing::new(signing::server_keys(&store).await?, None)?;
            let request = signing::TokenRequest {
                kind: args.kind,
                subject: args.subject,
                app_id: args.app,
                scopes: args.scopes,
                company: args.company,
                roles: args.roles,
                ttl_secs: args.ttl,
            };
            let claims = request.claims(&args.public.public_url)?;
            println!("{}", signing::issue(&store, &keyring, &claims).await?);
            Ok(())
        }
    }
}
