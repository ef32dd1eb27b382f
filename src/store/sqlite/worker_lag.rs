//! The delivery workers' lag on SQLite: `delivery_worker_lag`, written with relaxed commits (a
//! report lost in a power cut only leaves intake unpaced until the next) and read from the read
//! pool.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;
use time::OffsetDateTime;

use super::{SqliteStore, rows::millis};
use crate::store::{
    StoreResult, WORKER_LAG_FORGOTTEN_AFTER, WorkerLagStore, lag_from_micros, lag_micros,
};

#[async_trait]
impl WorkerLagStore for SqliteStore {
    async fn report_worker_lag(
        &self,
        claimant: &str,
        lag: Duration,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let claimant = claimant.to_owned();
        let lag_us = lag_micros(lag);
        self.writer
            .relaxed(move |tx| {
                tx.prepare_cached(
                    "INSERT INTO delivery_worker_lag (claimant, lag_us, reported_at_ms) \
                     VALUES (?1, ?2, ?3) ON CONFLICT (claimant) DO UPDATE SET \
                     lag_us = excluded.lag_us, reported_at_ms = excluded.reported_at_ms",
                )?
                .execute(params![claimant, lag_us, millis(at)])?;
                tx.prepare_cached("DELETE FROM delivery_worker_lag WHERE reported_at_ms < ?1")?
                    .execute([millis(at - WORKER_LAG_FORGOTTEN_AFTER)])?;
                Ok(())
            })
            .await
    }

    async fn withdraw_worker_lag(&self, claimant: &str) -> StoreResult<()> {
        let claimant = claimant.to_owned();
        self.writer
            .relaxed(move |tx| {
                tx.prepare_cached("DELETE FROM delivery_worker_lag WHERE claimant = ?1")?
                    .execute([claimant])?;
                Ok(())
            })
            .await
    }

    async fn workers_lag(&self, since: OffsetDateTime) -> StoreResult<Duration> {
        let lag_us: i64 = self
            .readers
            .read(move |db| {
                db.prepare_cached(
                    "SELECT COALESCE(MAX(lag_us), 0) FROM delivery_worker_lag \
                     WHERE reported_at_ms >= ?1",
                )?
                .query_row([millis(since)], |row| row.get(0))
            })
            .await?;
        Ok(lag_from_micros(lag_us))
    }
}
