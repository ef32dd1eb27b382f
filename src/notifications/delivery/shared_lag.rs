//! Pacing across instances. An instance that serves the API without a worker (`--role api`)
//! has no lag of its own to pace company-event intake by, yet its intake feeds the workers of
//! the others: unpaced, a publisher could outrun them just as on one machine. So each worker
//! reports its lag to the database while it is above the limit (again every
//! [`REPORT_INTERVAL`], and once more when it has caught up), and such an instance reads the
//! largest recent report every [`FOLLOW_INTERVAL`] and paces by it as a worker of its own would.
//!
//! A report older than [`STALE_AFTER`] no longer counts: that of a worker killed while behind
//! holds intake back a second at most (a worker that stops cleanly withdraws its report). The
//! instances' clocks are taken to agree within that second, as the claims' leases take them
//! to; a worker whose clock runs further behind is not followed — intake goes unpaced, never
//! held back for nothing.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, time::Instant};

use super::DeliveryWorker;

/// How often a worker that is behind repeats its report.
const REPORT_INTERVAL: Duration = Duration::from_millis(100);

/// How often an instance without a worker reads the reports.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// How long a report counts.
const STALE_AFTER: Duration = Duration::from_secs(1);

impl DeliveryWorker {
    /// Reports this worker's lag while it is above the limit, until `stop`; then withdraws it.
    pub(super) async fn report_lag(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let limit = self.pacing.limit();
        if limit.is_zero() {
            return;
        }
        let mut lag = self.pacing.watch_lag();
        // Whether the last report said this worker is behind.
        let mut behind = false;
        let mut reported = false;
        let mut next_report = Instant::now();
        loop {
            let current = *lag.borrow_and_update();
            let due = match (behind, current > limit) {
                (false, false) => false,
                // Still behind: the report is repeated, so that it stays fresh.
                (true, true) => Instant::now() >= next_report,
                // Fallen behind, or caught up: at once.
                _ => true,
            };
            if due {
                let at = self.clock.now();
                if let Err(err) = self
                    .store
                    .report_worker_lag(&self.claimant, current, at)
                    .await
                {
                    tracing::debug!(error = %err, "could not report the delivery worker's lag");
                }
                // A failed report of falling behind is tried again at the next interval; one
                // of catching up is not: the last report goes stale within a second.
                behind = current > limit;
                reported = true;
                next_report = Instant::now() + REPORT_INTERVAL;
            }
            tokio::select! {
                () = tokio::time::sleep_until(next_report), if behind => {}
                changed = lag.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
        }
        if reported && let Err(err) = self.store.withdraw_worker_lag(&self.claimant).await {
            tracing::debug!(error = %err, "could not withdraw the delivery worker's lag");
        }
    }

    /// On an instance without a worker: paces company-event intake by the largest lag the
    /// workers reported, until `stop`.
    pub async fn follow_workers_lag(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if self.pacing.limit().is_zero() {
            return;
        }
        loop {
            let since = self.clock.now() - STALE_AFTER;
            let lag = match self.store.workers_lag(since).await {
                Ok(lag) => lag,
                Err(err) => {
                    // Not knowing is no reason to hold intake back.
                    tracing::debug!(error = %err, "could not read the delivery workers' lag");
                    Duration::ZERO
                }
            };
            self.pacing.publish_lag(lag);
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_INTERVAL) => {}
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
        }
        self.pacing.stopped();
    }
}
