//! Gauges read when `/metrics` is scraped, from where the truth is kept (the database, the inbox
//! feed), rather than kept up to date by every change: a scrape every few seconds costs less
//! than bookkeeping on each write, and the value cannot drift from what it counts.
//!
//! A new gauge of this kind is a line in [`sample`] and its family in `metrics::FAMILIES`.

use time::OffsetDateTime;

use super::PartnerBacklog;
use crate::{App, store::DeliveryBacklog};

/// Sets the scrape-time gauges. A value that cannot be read keeps its last one, and says why in
/// the log: the scrape itself still answers.
pub async fn sample(app: &App) {
    match app.store.delivery_backlog().await {
        Ok(backlog) => app
            .metrics
            .delivery_backlog(&backlog_at(&backlog, app.clock.now())),
        Err(err) => tracing::warn!(error = %err, "metrics: the delivery backlog could not be read"),
    }
    // The feed runs only where the API is served; elsewhere its lag would mean nothing.
    if app.settings.role.serves_api() {
        app.metrics
            .inbox_feed(app.inbox_feed.lag(), app.inbox_feed.streams());
    }
}

/// Each partner's backlog as the gauges show it at `now`.
fn backlog_at(backlog: &[DeliveryBacklog], now: OffsetDateTime) -> Vec<PartnerBacklog> {
    backlog
        .iter()
        .map(|partner| PartnerBacklog {
            partner: partner.partner_id.clone(),
            pending: partner.pending,
            oldest_due: partner
                .oldest_next_attempt
                .map(|due| (now - due).try_into().unwrap_or_default())
                .unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::macros::datetime;

    use super::*;

    #[test]
    fn only_a_delivery_already_due_has_an_age() {
        let now = datetime!(2026-01-01 12:00 UTC);
        let backlog = |oldest| DeliveryBacklog {
            partner_id: "acme".into(),
            pending: 3,
            oldest_next_attempt: oldest,
        };
        let ages: Vec<Duration> = [
            Some(datetime!(2026-01-01 11:59 UTC)),
            Some(datetime!(2026-01-01 12:05 UTC)),
            None,
        ]
        .into_iter()
        .map(|oldest| backlog_at(&[backlog(oldest)], now)[0].oldest_due)
        .collect();
        assert_eq!(
            ages,
            [Duration::from_secs(60), Duration::ZERO, Duration::ZERO]
        );
    }
}
