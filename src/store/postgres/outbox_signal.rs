//! A PostgreSQL channel listened to on a connection of its own: the outbox's (notified by its
//! trigger, migration 0013), so that an event committed by any instance wakes this instance's
//! inbox feed at once, and the delivery workers' (`wakeups.rs`). sqlx's `PgListener`
//! reconnects by itself when its connection drops; a connection that stays silent is asked a
//! question now and then, since a dead peer can look like a quiet one for ever; when all fails,
//! it connects again with a growing pause. Each time listening resumes, announcements may have
//! been missed, so that counts as a change too. Meanwhile the listener's poll is what finds
//! other instances' writes.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use crate::store::OutboxSignal;

/// The channel of `outbox_notify()` (migration 0013).
pub(super) const OUTBOX: &str = "maestro_outbox";
/// How long the connection may stay silent before it is asked whether it still lives.
const QUIET: Duration = Duration::from_secs(30);
/// The pauses between attempts to listen again: from the first to the longest.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_LONGEST: Duration = Duration::from_secs(10);

pub(super) struct Listener {
    channel: &'static str,
    /// Who listens, for the log lines ("inbox feed", "delivery worker").
    listener_of: &'static str,
    /// A pool of one connection, only this listener's: it holds it for as long as it listens.
    pool: PgPool,
    listener: Option<PgListener>,
    /// Every call on the connection (connect, `LISTEN`, the liveness question) is bounded.
    timeout: Duration,
    retry: Duration,
}

impl Listener {
    /// Connects and listens before returning, so that whatever commits after is announced; on
    /// failure it tries again when first asked for a change.
    pub(super) async fn start(
        options: PgConnectOptions,
        timeout: Duration,
        channel: &'static str,
        listener_of: &'static str,
    ) -> Listener {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect_lazy_with(options);
        let mut listener = Listener {
            channel,
            listener_of,
            pool,
            listener: None,
            timeout,
            retry: RETRY_FIRST,
        };
        if let Err(err) = listener.listen().await {
            tracing::warn!(error = %err, channel, "{listener_of}: listening failed; polling until it works");
        }
        listener
    }

    async fn listen(&mut self) -> Result<(), sqlx::Error> {
        let listening = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(self.channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let listener = tokio::time::timeout(self.timeout, listening)
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        self.listener = Some(listener);
        Ok(())
    }

    /// Drops the connection: the next call listens again after a pause.
    fn lost(&mut self, err: &dyn std::fmt::Display) {
        let (channel, listener_of) = (self.channel, self.listener_of);
        tracing::warn!(error = %err, channel, "{listener_of}: the signal was lost; listening again");
        self.listener = None;
    }
}

#[async_trait]
impl OutboxSignal for Listener {
    async fn changed(&mut self) {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                tokio::time::sleep(self.retry).await;
                match self.listen().await {
                    Ok(()) => {
                        let (channel, listener_of) = (self.channel, self.listener_of);
                        tracing::info!(channel, "{listener_of}: listening again");
                        self.retry = RETRY_FIRST;
                        return;
                    }
                    Err(err) => {
                        let (channel, listener_of) = (self.channel, self.listener_of);
                        tracing::debug!(error = %err, channel, "{listener_of}: listening failed");
                        self.retry = (self.retry * 2).min(RETRY_LONGEST);
                        continue;
                    }
                }
            };
            match tokio::time::timeout(QUIET, listener.try_recv()).await {
                Ok(Ok(Some(_))) => {
                    // A burst announces itself many times: one pass reads it all.
                    while listener.next_buffered().is_some() {}
                    return;
                }
                // The connection dropped and a new one listens (sqlx reconnects): anything
                // announced in between was missed.
                Ok(Ok(None)) => return,
                Ok(Err(err)) => {
                    self.lost(&err);
                    return;
                }
                Err(_quiet) => {
                    let asked = sqlx::query("SELECT 1").execute(&mut *listener);
                    match tokio::time::timeout(self.timeout, asked).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => {
                            self.lost(&err);
                            return;
                        }
                        Err(_) => {
                            self.lost(&"no answer in time");
                            return;
                        }
                    }
                }
            }
        }
    }
}
