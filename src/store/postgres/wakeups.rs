//! Waking the delivery workers of other instances: LISTEN/NOTIFY on one channel.
//!
//! An instance that records deliveries due now (an event's, a replay) announces it with a
//! `NOTIFY`; every instance's worker listens and claims at once instead of at its next poll.
//! The poll stays as the fallback: a notification lost with a connection (or sent while a
//! listener reconnects) is made up for by a wake after the reconnection and by the poll.
//!
//! Announcements are sent after the recording transaction, on a task of their own, and
//! coalesced: a transaction that notifies holds a database-wide lock from its commit's start to
//! its end (PostgreSQL serialises notifying commits), so notifying inside each event's
//! transaction would queue every intake behind one another's fsync. Announcements made while
//! one is being sent become one more, sent after it.

use std::{sync::Arc, time::Duration};

use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::Notify;

/// The channel every instance of one database listens on.
const CHANNEL: &str = "maestro_deliveries";
/// How long a listener that cannot connect waits before trying again.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

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

/// Wakes `wake` on every announcement, from this instance or another, until dropped. Connects
/// again by itself when its connection is lost, and wakes `wake` once it listens again: what
/// was announced meanwhile was not heard.
pub(super) async fn listen(pool: &PgPool, wake: &Notify) {
    loop {
        let mut listener = match PgListener::connect_with(pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for new deliveries; polling meanwhile");
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        if let Err(err) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %err, "cannot listen for new deliveries; polling meanwhile");
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        }
        // Whatever was announced before this listener started was not heard.
        wake.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => wake.notify_one(),
                // The connection was lost: a new listener, which wakes the worker once it
                // listens.
                Ok(None) => {
                    tracing::info!("the listener for new deliveries lost its connection");
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the listener for new deliveries failed");
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    break;
                }
            }
        }
    }
}
