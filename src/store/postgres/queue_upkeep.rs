//! Upkeep of the delivery workers' tables: a vacuum of `delivery_queue` and `delivery_leases`
//! when the store opens and every so many recorded outcomes.
//!
//! Every delivery leaves a dead row in each (its lease, then its place in the queue), and a
//! claim's index range starts where those dead entries gather: until a vacuum removes them,
//! each claim reads past them all, and the workers slow as they deliver. Autovacuum would see to
//! it on a server that runs it, but only a while later; where it is off, never. Both tables are
//! as small as the backlog, so a vacuum of them is short, and the workers run one themselves,
//! whatever the server's settings. One at a time per instance; `SKIP_LOCKED`, so that an
//! instance whose peer is vacuuming goes on; a failure is logged, and the next round tries again.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use sqlx::PgPool;

/// Recorded outcomes between two vacuums: often enough that a claim never walks more than
/// this many dead entries, rarely enough that vacuums are a small share of the work (a vacuum
/// of a queue of 60,000 takes a few tens of milliseconds).
const VACUUM_EVERY: u64 = 10_000;

#[derive(Default)]
pub(super) struct QueueUpkeep {
    recorded: AtomicU64,
    running: Arc<AtomicBool>,
}

impl QueueUpkeep {
    /// Counts `outcomes` more recorded outcomes, and starts a vacuum in the background when
    /// the count passes a multiple of [`VACUUM_EVERY`] and none is running.
    pub(super) fn recorded(&self, pool: &PgPool, timeout: Duration, outcomes: usize) {
        let before = self.recorded.fetch_add(outcomes as u64, Ordering::Relaxed);
        if !passes_a_round(before, outcomes as u64) || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, running) = (pool.clone(), Arc::clone(&self.running));
        tokio::spawn(async move {
            if let Err(err) = super::timed(timeout, vacuum(&pool)).await {
                tracing::warn!(error = %err, "could not vacuum the delivery queue");
            }
            running.store(false, Ordering::Release);
        });
    }
}

/// Vacuums the queue and the leases (outside any transaction, as `VACUUM` must run).
pub(super) async fn vacuum(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("VACUUM (SKIP_LOCKED) delivery_queue, delivery_leases")
        .execute(pool)
        .await
        .map(drop)
}

/// Whether counting `added` more from `before` passes a multiple of [`VACUUM_EVERY`].
fn passes_a_round(before: u64, added: u64) -> bool {
    before / VACUUM_EVERY != (before + added) / VACUUM_EVERY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vacuum_is_due_each_time_the_count_passes_a_round() {
        assert!(!passes_a_round(0, 0));
        assert!(!passes_a_round(0, VACUUM_EVERY - 1));
        assert!(passes_a_round(VACUUM_EVERY - 1, 1));
        assert!(!passes_a_round(VACUUM_EVERY, VACUUM_EVERY - 1));
        // A large batch passing two rounds still starts one vacuum.
        assert!(passes_a_round(VACUUM_EVERY / 2, 2 * VACUUM_EVERY));
    }
}
