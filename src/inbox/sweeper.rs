//! The expiry sweeper (and the end of snoozes). Users never see an alert past its `expiresAt` — the inbox reads compare
//! with the clock — so the sweeper is not what hides alerts. It announces expiries
//! (`alert.expired` in the outbox, for the live stream and other consumers) and, once the
//! retention has passed, deletes expired alerts with their revisions.
//!
//! A pass is idempotent: an alert is marked expired once (its event with it, in one
//! transaction), and only marked alerts are purged. Sweepers of several instances may run at
//! once; on PostgreSQL they skip each other's rows.
//!
//! A withdrawn alert goes the same way, on the same dates: marked at its `expiresAt` (without
//! an `alert.expired`: its `alert.withdrawn` was its last word) and purged after the retention.
//! Counting from the expiry rather than the withdrawal keeps its extRef taken for as long as a
//! retry of its POST could still be accepted, so no retry brings it back.

use std::{sync::Arc, time::Duration};

use time::OffsetDateTime;
use tokio::sync::watch;

use super::InboxFeed;
use crate::{
    clock::Clock,
    store::{DynStore, StoreResult},
};

/// Alerts one transaction expires or purges; a pass repeats until none is left.
const BATCH: i64 = 500;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Alerts marked expired (withdrawn ones included, which get no `alert.expired`).
    pub expired: u64,
    pub purged: u64,
    /// Expired request and refresh tokens of the token endpoint deleted.
    pub grants_purged: u64,
    /// Snoozes ended (live alerts' with `alert.unsnoozed`).
    pub woken: u64,
    /// Lapsed inbox sessions and used sign-in links deleted.
    pub sessions_purged: u64,
}

pub struct Sweeper {
    store: DynStore,
    clock: Arc<Clock>,
    feed: Arc<InboxFeed>,
    interval: Duration,
    retention: Duration,
}

impl Sweeper {
    pub fn new(
        store: DynStore,
        clock: Arc<Clock>,
        feed: Arc<InboxFeed>,
        interval: Duration,
        retention: Duration,
    ) -> Self {
        Sweeper {
            store,
            clock,
            feed,
            interval,
            retention,
        }
    }

    /// One pass as of `now`: expire what is due, then purge what expired more than the retention
    /// before `now`.
    pub async fn run_once(&self, now: OffsetDateTime) -> StoreResult<SweepReport> {
        let mut report = SweepReport::default();
        loop {
            let expired = self.store.expire_alerts(now, BATCH).await?;
            report.expired += expired;
            if expired < BATCH as u64 {
                break;
            }
        }
        // A snooze ends at its instant in every read (like an expiry); the pass announces it,
        // so a live stream hears of it within the sweep interval.
        loop {
            let woken = self.store.wake_snoozed(now, BATCH).await?;
            report.woken += woken;
            if woken < BATCH as u64 {
                break;
            }
        }
        if report.expired > 0 || report.woken > 0 {
            self.feed.poke();
        }
        let cutoff = now - self.retention;
        loop {
            let purged = self.store.purge_expired(cutoff, BATCH).await?;
            report.purged += purged;
            if purged < BATCH as u64 {
                break;
            }
        }
        // The App Center's expired grants go with the same pass: a used refresh token is kept
        // until it expires, so that presenting it again is still recognised as a replay.
        report.grants_purged = self.store.purge_expired_grants(now).await?;
        report.sessions_purged = self.store.purge_inbox_sessions(now).await?;
        Ok(report)
    }

    /// A pass every `interval` (the first one interval after start) until `stop` turns true; a
    /// pass under way finishes first.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                () = tokio::time::sleep(self.interval) => {}
            }
            match self.run_once(self.clock.now()).await {
                Ok(report) if report != SweepReport::default() => {
                    tracing::info!(
                        expired = report.expired,
                        purged = report.purged,
                        woken = report.woken,
                        "swept expired alerts"
                    );
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "expiry sweep failed; will retry"),
            }
        }
    }
}
