//! The delivery workers' lag, shared through the database so that an instance serving the API
//! without a worker (`--role api`) can pace company-event intake as the workers' own instances
//! do (see `notifications::delivery::shared_lag`). A trait of its own, which [`super::Store`]
//! extends, implemented by each backend in a file of its own.
//!
//! A report is bookkeeping, not data: losing the last few in a crash only leaves the intake
//! unpaced until the next, so neither backend makes it durable.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;

/// Reports older than this are deleted by the next report (those of workers that died without
/// withdrawing theirs), so the table holds one row per live worker and a few of the last hour.
pub const WORKER_LAG_FORGOTTEN_AFTER: Duration = Duration::from_secs(3600);

/// A lag as both backends store it: whole microseconds (saturating).
pub(crate) fn lag_micros(lag: Duration) -> i64 {
    i64::try_from(lag.as_micros()).unwrap_or(i64::MAX)
}

/// A stored lag back (a negative one, which no report writes, as zero).
pub(crate) fn lag_from_micros(micros: i64) -> Duration {
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

#[async_trait]
pub trait WorkerLagStore: Send + Sync {
    /// Records that the worker `claimant` was `lag` behind at `at`, replacing its last report,
    /// and forgets the reports older than [`WORKER_LAG_FORGOTTEN_AFTER`].
    async fn report_worker_lag(
        &self,
        claimant: &str,
        lag: Duration,
        at: OffsetDateTime,
    ) -> StoreResult<()>;

    /// Removes the worker's report (it stops claiming).
    async fn withdraw_worker_lag(&self, claimant: &str) -> StoreResult<()>;

    /// The largest lag of the reports made at or after `since`; zero when there is none.
    async fn workers_lag(&self, since: OffsetDateTime) -> StoreResult<Duration>;
}
