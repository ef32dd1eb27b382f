//! Waking the delivery workers of other instances: LISTEN/NOTIFY on one channel.
//!
//! An instance that records deliveries due now (an event's, a replay) announces it with a
//! `NOTIFY`; every instance's worker listens and claims at once instead of at its next poll.
//! The poll stays as the fallback: a notification lost with a connection (or sent while a
//! listener reconnects) is made up for by a wake after the reconnection and by the poll. The
//! listening side is `outbox_signal::Listener` on this channel (`Store::watch_deliveries`).
//!
//! Announcements are sent after the recording transaction, on a task of their own, and
//! coalesced: a transaction that notifies holds a database-wide lock from its commit's start to
//! its end (PostgreSQL serialises notifying commits), so notifying inside each event's
//! transaction would queue every intake behind one another's fsync. Announcements made while
//! one is being sent become one more, sent after it.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::Notify;

/// The channel every instance of one database listens on.
pub(super) const CHANNEL: &str = "maestro_deliveries";

/// Sends the coalesced announcements of this instance.
pub(super) struct Announcer {
    pending: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Announcer {
    pub(super) fn start(pool: PgPool) -> Self {
        let pending = Arc::new(Notify::new());
        let waiting = pending.clone();
        let task = tokio::spawn(async move {
            loop {
                waiting.notified().await;
                if let Err(err) = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(CHANNEL)
                    .execute(&pool)
                    .await
                {
                    // The other instances find the work at their next poll.
                    tracing::warn!(error = %err, "could not announce new deliveries");
                }
            }
        });
        Announcer { pending, task }
    }

    /// Deliveries fell due: tell the other instances (soon, once for many calls).
    pub(super) fn announce(&self) {
        self.pending.notify_one();
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
