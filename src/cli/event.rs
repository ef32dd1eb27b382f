//! `maestro event publish`: company events recorded from the command line.

use std::path::PathBuf;

use clap::Subcommand;

use crate::{
    cli::existing_store,
    config::{DatabaseArgs, Layered},
};

#[derive(Subcommand, Debug)]
pub enum EventCommand {
    /// Record a company event (the JSON body of POST /internal/v1/company-events, from FILE or
    /// standard input) with one delivery per matching subscription; prints the event id and
    /// the number of deliveries.
    Publish {
        /// A JSON file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        #[command(flatten)]
        database: Layered<DatabaseArgs>,
    },
}

pub async fn run(command: EventCommand) -> anyhow::Result<()> {
    match command {
        EventCommand::Publish { file, database } => {
            let text = match file.as_deref() {
                None => std::io::read_to_string(std::io::stdin())?,
                Some(path) if path.as_os_str() == "-" => std::io::read_to_string(std::io::stdin())?,
                Some(path) => std::fs::read_to_string(path)?,
            };
            let event = crate::input::read_json(text.as_bytes())
                .and_then(|body| {
                    crate::notifications::events::parse(&body, time::OffsetDateTime::now_utc())
                })
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            let store = existing_store(&database).await?;
            let recorded = crate::notifications::EventIntake::new(store, None)
                .record(event)
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            println!(
                "{}\t{} deliveries",
                recorded.event_id,
                recorded.deliveries.len()
            );
            Ok(())
        }
    }
}
