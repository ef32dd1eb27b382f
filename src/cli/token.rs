//! `maestro token issue`: the operator's tool for a token signed with the server's own key.

use clap::Subcommand;

use crate::{
    app::open_store,
    auth::{KeyRing, TokenKind, signing},
    config::DatabaseArgs,
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
    /// Written into the token's `iss` claim.
    #[arg(
        long,
        env = "MAESTRO_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

pub async fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Issue(args) => {
            let store = open_store(&args.database).await?;
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
            let claims = request.claims(&args.public_url)?;
            println!("{}", signing::issue(&store, &keyring, &claims).await?);
            Ok(())
        }
    }
}
