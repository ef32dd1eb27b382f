//! The publisher loop: one instance at a time (a lease in the database) reads each feed below
//! the horizon, publishes the events in id order, and moves its cursor only over what JetStream
//! acknowledged. A crash or a takeover republishes at most what was not acknowledged (and what
//! was acknowledged but not yet recorded, which the duplicate window drops).
//!
//! Nothing waits on the broker but this loop: requests write the outbox and answer. With NATS
//! unreachable the backlog stays in the outbox, the lag gauge grows, a warning is logged at the
//! first failure and once a minute while it lasts, and passes are retried with backoff.
//! `run_once` is one pass, which the tests drive.

use std::{sync::Arc, time::Duration};

use time::OffsetDateTime;
use tokio::sync::{Mutex, watch};

use super::{
    Horizon, Outgoing, PublisherConfig,
    jetstream::{Broker, Published},
};
use crate::{
    store::{DynStore, PublishCursor},
    telemetry::Metrics,
};

/// Events read and published per batch.
const PAGE: i64 = 500;
/// Batches of each feed per pass at most, so that a long backlog does not hold up a shutdown.
const PAGES_PER_PASS: usize = 20;
/// How often an idle publisher looks for new events (other instances' included).
const POLL: Duration = Duration::from_millis(200);
/// How soon it looks again when heads wait to settle.
const SETTLING: Duration = Duration::from_millis(10);
/// How often an instance without the lease checks whether it lapsed.
const STANDBY_POLL: Duration = Duration::from_secs(1);
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(10);
/// While publishing keeps failing, a warning this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

pub struct Publisher {
    store: DynStore,
    config: PublisherConfig,
    metrics: Arc<Metrics>,
    /// Names this instance's lease.
    owner: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    broker: Option<Broker>,
    /// Until when this instance holds the lease, as recorded.
    held_until: Option<OffsetDateTime>,
    cursor: PublishCursor,
    horizon: Horizon,
    /// The lag last measured, in seconds.
    lag: f64,
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Messages JetStream acknowledged (duplicates included).
    pub published: usize,
    /// Of those, the ones it already had.
    pub duplicates: usize,
    /// Another instance holds the lease.
    pub standby: bool,
    /// There is more to do at once (the pass used its batches, or heads wait to settle).
    pub more: bool,
}

impl Publisher {
    pub fn new(store: DynStore, config: PublisherConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        // The lag gauge appears with the first pass's measure, not before.
        Arc::new(Publisher {
            store,
            config,
            metrics,
            owner: format!("publisher-{}", uuid::Uuid::new_v4().simple()),
            state: Mutex::new(State::default()),
        })
    }

    /// One pass: takes or keeps the lease, publishes what is settled, records the lag.
    pub async fn run_once(&self) -> anyhow::Result<Pass> {
        let mut state = self.state.lock().await;
        let result = self.pass(&mut state).await;
        if result.is_err() {
            // A fresh connection next time, which also makes sure of the stream again.
            state.broker = None;
        }
        state.lag = self.measure_lag(&state).await;
        result
    }

    async fn pass(&self, state: &mut State) -> anyhow::Result<Pass> {
        if !self.hold_lease(state).await? {
            return Ok(Pass {
                standby: true,
                ..Pass::default()
            });
        }
        let seen = self.store.outbox_horizon(state.horizon.beyond()).await?;
        let settled = state.horizon.observe(&seen);
        let mut pass = Pass {
            more: state.horizon.waiting(),
            ..Pass::default()
        };
        if state.broker.is_none() {
            state.broker = Some(Broker::connect(&self.config).await?);
        }
        // Alert events, page by page; then company events, the same way.
        let mut pages = 0;
        while state.cursor.alerts_after < settled.alerts && pages < PAGES_PER_PASS {
            pages += 1;
            let page = self
                .store
                .outbox_between(state.cursor.alerts_after, settled.alerts, PAGE)
                .await?;
            let full = page.len() as i64 == PAGE;
            let batch: Vec<_> = page
                .iter()
                .map(|e| (e.event.id, self.config.naming.alert_message(e)))
                .collect();
            let after = self
                .publish(state, Feed::Alerts, &batch, settled.alerts, full, &mut pass)
                .await?;
            self.advance(state, Feed::Alerts.moved(state.cursor, after))
                .await?;
        }
        pass.more |= pages == PAGES_PER_PASS;
        // The company feed has batches of its own: a long alert backlog does not starve it.
        pages = 0;
        while state.cursor.company_after < settled.company && pages < PAGES_PER_PASS {
            pages += 1;
            let page = self
                .store
                .company_events_between(state.cursor.company_after, settled.company, PAGE)
                .await?;
            let full = page.len() as i64 == PAGE;
            let batch: Vec<_> = page
                .iter()
                .map(|e| (e.position, Some(self.config.naming.company_message(e))))
                .collect();
            let after = self
                .publish(
                    state,
                    Feed::Company,
                    &batch,
                    settled.company,
                    full,
                    &mut pass,
                )
                .await?;
            self.advance(state, Feed::Company.moved(state.cursor, after))
                .await?;
        }
        pass.more |= pages == PAGES_PER_PASS;
        Ok(pass)
    }

    /// Publishes a batch read up to `until`; returns how far the feed is done: past every event
    /// before the first one not acknowledged (and up to `until` when the batch was the rest).
    /// Fails, after the cursor moved over what was acknowledged, when JetStream did not take
    /// everything.
    async fn publish(
        &self,
        state: &mut State,
        feed: Feed,
        batch: &[(i64, Option<Outgoing>)],
        until: i64,
        full: bool,
        pass: &mut Pass,
    ) -> anyhow::Result<i64> {
        let messages: Vec<Outgoing> = batch.iter().filter_map(|(_, m)| m.clone()).collect();
        let published = match messages.is_empty() {
            true => Published {
                acknowledged: 0,
                duplicates: 0,
                error: None,
            },
            false => {
                let broker = state.broker.as_ref().expect("connected above");
                broker.publish(&messages, self.config.timeout).await
            }
        };
        pass.published += published.acknowledged;
        pass.duplicates += published.duplicates;
        self.metrics
            .outbox_published(feed.name(), published.acknowledged, published.duplicates);
        // Done: every event up to the first message not acknowledged (those not to publish
        // included).
        let mut acknowledged_left = published.acknowledged;
        let mut after = feed.after(state.cursor);
        for (position, message) in batch {
            if message.is_some() {
                if acknowledged_left == 0 {
                    break;
                }
                acknowledged_left -= 1;
            }
            after = *position;
        }
        if let Some(error) = published.error {
            // Keep what was acknowledged, then report.
            self.advance(state, feed.moved(state.cursor, after)).await?;
            return Err(error);
        }
        Ok(if full { after } else { until })
    }

    /// Records the cursor (and extends the lease); fails when another instance took over.
    async fn advance(&self, state: &mut State, cursor: PublishCursor) -> anyhow::Result<()> {
        if cursor == state.cursor {
            return Ok(());
        }
        let lease_until = OffsetDateTime::now_utc() + self.config.lease();
        if !self
            .store
            .advance_publisher(&self.owner, cursor, lease_until)
            .await?
        {
            state.held_until = None;
            anyhow::bail!("another instance took over publishing");
        }
        state.cursor = cursor;
        state.held_until = Some(lease_until);
        Ok(())
    }

    /// Takes the lease or renews it when half of it has gone; false when another instance
    /// holds it.
    async fn hold_lease(&self, state: &mut State) -> anyhow::Result<bool> {
        let now = OffsetDateTime::now_utc();
        let lease = self.config.lease();
        if state
            .held_until
            .is_some_and(|until| now + lease / 2 < until)
        {
            return Ok(true);
        }
        let claim = self
            .store
            .claim_publisher(&self.owner, now, now + lease)
            .await?;
        state.cursor = claim.cursor;
        state.held_until = claim.held.then_some(now + lease);
        if !claim.held {
            state.broker = None;
        }
        Ok(claim.held)
    }

    /// Sets the lag gauge: how long the oldest event not yet published has waited, read from
    /// the database (events may have come since this pass looked).
    async fn measure_lag(&self, state: &State) -> f64 {
        let lag = match self.store.oldest_unpublished(state.cursor).await {
            Ok(Some(oldest)) => (OffsetDateTime::now_utc() - oldest)
                .as_seconds_f64()
                .max(0.0),
            Ok(None) => 0.0,
            Err(err) => {
                tracing::debug!(error = %err, "could not measure the publishing lag");
                return state.lag;
            }
        };
        self.metrics.outbox_publish_lag(lag);
        lag
    }

    /// Publishes until `stop` turns true; then lets the lease go so another instance can take
    /// over at once.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if !self.store.shared_by_instances()
            && let Err(err) = self.store.release_publisher(None).await
        {
            tracing::error!(error = %err, "could not release the publisher's earlier lease");
        }
        let mut outage: Option<Outage> = None;
        let mut retry = FIRST_RETRY;
        while !*stop.borrow() {
            let wait = match self.run_once().await {
                Ok(pass) => {
                    if let Some(ended) = outage.take() {
                        tracing::info!(
                            failed_for_s = ended.since.elapsed().as_secs(),
                            "downstream: publishing to NATS resumed"
                        );
                    }
                    retry = FIRST_RETRY;
                    match pass {
                        Pass { standby: true, .. } => STANDBY_POLL,
                        // Heads settling: look again soon. A batch budget spent: go on.
                        Pass {
                            more: true,
                            published: 0,
                            ..
                        } => SETTLING,
                        Pass { more: true, .. } => Duration::ZERO,
                        _ => POLL,
                    }
                }
                Err(err) => {
                    self.failed(&mut outage, &err).await;
                    let wait = retry;
                    retry = (retry * 2).min(LAST_RETRY);
                    wait
                }
            };
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if let Err(err) = self.store.release_publisher(Some(&self.owner)).await {
            tracing::warn!(error = %err, "could not release the publisher's lease");
        }
        tracing::info!("downstream publisher stopped");
    }

    /// Logs a failed pass: a warning at the first and once a minute while they go on.
    async fn failed(&self, outage: &mut Option<Outage>, err: &anyhow::Error) {
        let lag_s = self.state.lock().await.lag.round();
        let error = format!("{err:#}");
        match outage {
            None => {
                tracing::warn!(%error, lag_s, "downstream: publishing to NATS failed; the events \
                    wait in the outbox, retrying with backoff");
                *outage = Some(Outage::new());
            }
            Some(ongoing) if ongoing.warned.elapsed() >= WARN_EVERY => {
                tracing::warn!(%error, lag_s, failing_for_s = ongoing.since.elapsed().as_secs(),
                    "downstream: publishing to NATS still fails");
                ongoing.warned = std::time::Instant::now();
            }
            Some(_) => tracing::debug!(%error, "downstream: publishing to NATS failed again"),
        }
    }
}

#[derive(Clone, Copy)]
enum Feed {
    Alerts,
    Company,
}

impl Feed {
    fn name(self) -> &'static str {
        match self {
            Feed::Alerts => "alerts",
            Feed::Company => "company",
        }
    }

    fn after(self, cursor: PublishCursor) -> i64 {
        match self {
            Feed::Alerts => cursor.alerts_after,
            Feed::Company => cursor.company_after,
        }
    }

    fn moved(self, cursor: PublishCursor, after: i64) -> PublishCursor {
        match self {
            Feed::Alerts => PublishCursor {
                alerts_after: after,
                ..cursor
            },
            Feed::Company => PublishCursor {
                company_after: after,
                ..cursor
            },
        }
    }
}

struct Outage {
    since: std::time::Instant,
    warned: std::time::Instant,
}

impl Outage {
    fn new() -> Outage {
        let now = std::time::Instant::now();
        Outage {
            since: now,
            warned: now,
        }
    }
}
