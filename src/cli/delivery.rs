//! `maestro delivery list | show | replay`: deliveries of company notifications to partners.

use clap::Subcommand;

use super::output::{OutputArgs, or_dash};

use crate::{
    cli::existing_store,
    config::{DatabaseArgs, Layered},
};

#[derive(Subcommand, Debug)]
pub enum DeliveryCommand {
    /// Deliveries, newest first: id, status, attempts, partner, type, event, last HTTP status,
    /// next attempt. With `--output json`, the objects of the admin API's list.
    List {
        /// pending, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        partner: Option<String>,
        #[arg(long, default_value_t = crate::notifications::admin::DEFAULT_LIST_LIMIT)]
        limit: i64,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        database: Layered<DatabaseArgs>,
    },
    /// One delivery and every attempt: time, HTTP status, latency, outcome, error, answer.
    Show {
        id: String,
        #[command(flatten)]
        database: Layered<DatabaseArgs>,
    },
    /// Make a failed (or delivered) delivery pending again, due now, with the same webhook-id.
    Replay {
        id: String,
        #[command(flatten)]
        database: Layered<DatabaseArgs>,
    },
}

pub async fn run(command: DeliveryCommand) -> anyhow::Result<()> {
    use std::sync::Arc;

    use crate::{
        clock::Clock, http::admin::Delivery, notifications::DeliveryAdmin, store::DeliverySummary,
    };
    let domain = |err: crate::Error| anyhow::anyhow!("{err}");
    let show_time = |at: Option<time::OffsetDateTime>| {
        at.and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".to_owned())
    };
    let line = |d: &DeliverySummary| {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            d.id,
            d.status,
            d.attempts,
            d.partner_id,
            d.object_type,
            d.event_type,
            or_dash(d.last_status),
            show_time(d.next_attempt_at),
        )
    };
    match command {
        DeliveryCommand::List {
            status,
            partner,
            limit,
            output,
            database,
        } => {
            let admin = DeliveryAdmin::new(
                existing_store(&database).await?,
                None,
                Arc::new(Clock::system()),
            );
            let deliveries = admin
                .list(status.as_deref(), partner.as_deref(), Some(limit))
                .await
                .map_err(domain)?;
            let headers = [
                "ID",
                "STATUS",
                "ATTEMPTS",
                "PARTNER",
                "TYPE",
                "EVENT",
                "LAST STATUS",
                "NEXT ATTEMPT",
            ];
            let listed: Vec<Delivery> = deliveries.into_iter().map(Delivery::from).collect();
            output.print(&listed, &headers, |d| {
                vec![
                    d.id.clone(),
                    d.status.clone(),
                    d.attempts.to_string(),
                    d.partner_id.clone(),
                    d.object_type.clone(),
                    d.event_type.clone(),
                    or_dash(d.last_status),
                    or_dash(d.next_attempt_at.as_deref()),
                ]
            })?;
        }
        DeliveryCommand::Show { id, database } => {
            let admin = DeliveryAdmin::new(
                existing_store(&database).await?,
                None,
                Arc::new(Clock::system()),
            );
            let (delivery, attempts) = admin.show(&id).await.map_err(domain)?;
            println!("{}", line(&delivery));
            if let Some(error) = &delivery.last_error {
                println!("last error: {error}");
            }
            for a in attempts {
                println!(
                    "  #{}\t{}\t{}\t{} ms\t{}\t{}\t{}",
                    a.attempt,
                    show_time(Some(a.started_at)),
                    a.status_code.map_or("-".to_owned(), |s| s.to_string()),
                    a.duration_ms,
                    a.outcome,
                    a.error.as_deref().unwrap_or("-"),
                    a.response_body.as_deref().unwrap_or("").replace('\n', " "),
                );
            }
        }
        DeliveryCommand::Replay { id, database } => {
            // A running server's worker picks it up within its poll interval.
            let admin = DeliveryAdmin::new(
                existing_store(&database).await?,
                None,
                Arc::new(Clock::system()),
            );
            let delivery = admin.replay(&id).await.map_err(domain)?;
            println!("{}", line(&delivery));
        }
    }
    Ok(())
}
