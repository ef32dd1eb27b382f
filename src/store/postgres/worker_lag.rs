//! The delivery workers' lag on PostgreSQL: `delivery_worker_lag`, an unlogged table (a report
//! lost in a crash only leaves intake unpaced until the next).

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::PostgresStore;
use crate::store::{
    StoreResult, WORKER_LAG_FORGOTTEN_AFTER, WorkerLagStore, lag_from_micros, lag_micros,
};

#[async_trait]
impl WorkerLagStore for PostgresStore {
    async fn report_worker_lag(
        &self,
        claimant: &str,
        lag: Duration,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let lag_us = lag_micros(lag);
        self.timed(async {
            // One statement, one round trip: the upsert, and the forgotten reports of others
            // deleted (a statement that both deleted and updated one row would be undefined).
            sqlx::query(
                "WITH forgotten AS (DELETE FROM delivery_worker_lag \
                 WHERE reported_at < $4 AND claimant <> $1) \
                 INSERT INTO delivery_worker_lag (claimant, lag_us, reported_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (claimant) DO UPDATE SET \
                 lag_us = excluded.lag_us, reported_at = excluded.reported_at",
            )
            .bind(claimant)
            .bind(lag_us)
            .bind(at)
            .bind(at - WORKER_LAG_FORGOTTEN_AFTER)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn withdraw_worker_lag(&self, claimant: &str) -> StoreResult<()> {
        self.timed(async {
            sqlx::query("DELETE FROM delivery_worker_lag WHERE claimant = $1")
                .bind(claimant)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn workers_lag(&self, since: OffsetDateTime) -> StoreResult<Duration> {
        self.timed(async {
            let lag_us: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(lag_us), 0)::BIGINT FROM delivery_worker_lag \
                 WHERE reported_at >= $1",
            )
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
            Ok(lag_from_micros(lag_us))
        })
        .await
    }
}
