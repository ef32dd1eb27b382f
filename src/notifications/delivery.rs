//! The delivery worker: claims due deliveries, POSTs each notification to its partner, and
//! records what happened.
//!
//! At least once: a delivery is pending in the database until an attempt ends it, and a claim
//! is a lease, so work held by a process that died is taken up again (on SQLite at the next
//! start, on PostgreSQL by any instance once the lease lapses). A retry keeps the delivery's id,
//! which is the `webhook-id` partners deduplicate by.
//!
//! `run` keeps up to `concurrency` attempts in flight, claiming again whenever some end, so a
//! partner that answers slowly or never holds back only its own deliveries; and a claim gives no
//! partner more than `partner_concurrency` deliveries in flight, counted in the database over
//! every instance. Each step of the loop is one transaction (`Store::finish_and_claim`): it
//! records the outcomes of every attempt that ended since the last step (group commit: those
//! that end during a step wait for the next) and claims the room they freed. An attempt's slot,
//! and its partner's share, are taken again only once its outcome is committed. On shutdown it
//! stops claiming, lets the attempts in flight finish and records them.
//! `run_once(now)` is one pass — claim what is due at `now`, send it all, record it — and is
//! what the tests drive, with a `now` of their choosing, instead of waiting for a timer.

mod in_flight;
mod pacing;
mod postback;
mod shared_lag;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use tracing::{Instrument, Span};

use self::{
    in_flight::{InFlight, idle_wait},
    pacing::Pacing,
    postback::Sent,
};
use super::{
    egress::{self, EgressPolicy},
    retry::{RetrySchedule, Verdict, next_delay},
};
use crate::{
    clock::Clock,
    store::{
        AttemptRecord, ClaimRequest, ClaimedDelivery, DeliveryNext, DynStore, FinishedAttempt,
    },
    telemetry::{self, Metrics, traces},
};

/// How long a woken worker lets further wake-ups gather before it claims.
const WAKE_COALESCING: Duration = Duration::from_millis(2);

/// How long a worker with many attempts in flight lets further ones end after the first before
/// it records them and claims, and from how many in flight it waits at all.
const ENDED_COALESCING: Duration = Duration::from_millis(1);
const COALESCE_FROM_IN_FLIGHT: usize = 16;

#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    pub schedule: RetrySchedule,
    pub request_timeout: Duration,
    /// How long a claim holds: longer than a request may take, so a live worker keeps it.
    pub lease: Duration,
    /// Deliveries sent at once by one worker.
    pub concurrency: usize,
    /// Deliveries of one partner in flight at once, over every instance.
    pub partner_concurrency: usize,
    /// How often an idle worker looks for work that another instance recorded.
    pub poll_interval: Duration,
    /// How far behind the worker may fall before company-event intake waits for it (zero:
    /// never; see `pacing`).
    pub lag_limit: Duration,
    pub public_url: String,
    pub policy: Arc<EgressPolicy>,
}

pub struct DeliveryWorker {
    store: DynStore,
    client: reqwest::Client,
    config: DeliveryConfig,
    metrics: Arc<Metrics>,
    /// The app's clock: when deliveries fall due and when retries are scheduled.
    clock: Arc<Clock>,
    /// Names this worker's claims.
    claimant: String,
    wake: Notify,
    pacing: Arc<Pacing>,
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub attempted: usize,
    pub delivered: usize,
}

impl DeliveryWorker {
    pub fn new(
        store: DynStore,
        config: DeliveryConfig,
        metrics: Arc<Metrics>,
        clock: Arc<Clock>,
    ) -> anyhow::Result<Arc<Self>> {
        let client = egress::client(config.policy.clone(), config.request_timeout)?;
        let pacing = Arc::new(Pacing::new(
            config.lag_limit,
            config.concurrency.max(1),
            config.partner_concurrency.max(1),
            metrics.clone(),
        ));
        Ok(Arc::new(DeliveryWorker {
            store,
            client,
            config,
            metrics,
            clock,
            claimant: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            wake: Notify::new(),
            pacing,
        }))
    }

    /// Tells an idle worker that new deliveries were recorded.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Holds a company event back while this worker is behind (`pacing`): at most a second,
    /// never an error.
    pub async fn pace_intake(&self) {
        self.pacing.admit().await;
    }

    /// One pass at `now`: claims what is due, delivers it concurrently, records every attempt.
    pub async fn run_once(self: &Arc<Self>, now: OffsetDateTime) -> anyhow::Result<Pass> {
        let claim = self.claim(now, self.slots());
        let claimed = self.store.claim_deliveries(&self.claimant, claim).await?;
        let mut in_flight = InFlight::new(self.slots());
        self.start(&mut in_flight, claimed, now);
        let mut ended = Vec::new();
        while in_flight.next_ended(&mut ended).await {}
        let kept = self.store.finish_attempts(&self.claimant, &ended).await?;
        self.warn_of_lapsed(&ended, &kept);
        Ok(Pass {
            attempted: ended.len(),
            delivered: ended
                .iter()
                .filter(|f| f.next == DeliveryNext::Delivered)
                .count(),
        })
    }

    /// Delivers until `stop` turns true, claiming as slots free up; then lets the attempts in
    /// flight finish and records them (graceful drain).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if !self.store.shared_by_instances() {
            // The only claimant: claims left by a previous run are void.
            match self.store.release_claims().await {
                Ok(0) => {}
                Ok(released) => {
                    tracing::info!(released, "took back deliveries claimed before a restart")
                }
                Err(err) => tracing::error!(error = %err, "could not release earlier claims"),
            }
        }
        // Other instances' intake wakes this worker too (PostgreSQL), rather than its poll.
        let listening = {
            let worker = self.clone();
            tokio::spawn(async move { worker.store.watch_deliveries(&worker.wake).await })
        };
        // Instances without a worker pace their intake by this one's lag too.
        let reporting = tokio::spawn(self.clone().report_lag(stop.clone()));
        let mut in_flight = InFlight::new(self.slots());
        // Attempts that ended, their outcomes not yet recorded.
        let mut ended = Vec::new();
        while !*stop.borrow() {
            // `None` while every slot is busy: only an attempt that ends makes room.
            let idle = match in_flight.free() {
                0 => None,
                _ => self.step(&mut in_flight, std::mem::take(&mut ended)).await,
            };
            tokio::select! {
                true = in_flight.next_ended(&mut ended), if !in_flight.is_empty() => {
                    // Under load attempts end a few at a time: a moment's pause lets one step
                    // (one transaction) record and replace the next few too. With few in
                    // flight, there is nothing to wait for.
                    if in_flight.len() >= COALESCE_FROM_IN_FLIGHT {
                        tokio::time::sleep(ENDED_COALESCING).await;
                    }
                    in_flight.collect_ended(&mut ended);
                }
                () = tokio::time::sleep(idle.unwrap_or_default()), if idle.is_some() => {}
                () = self.wake.notified(), if idle.is_some() => {
                    // Under load every event wakes the worker: a short pause lets one claim
                    // take the events of the next moment together, instead of a claim (and a
                    // transaction) per event while the partners' shares are full anyway.
                    tokio::time::sleep(WAKE_COALESCING).await;
                    in_flight.collect_ended(&mut ended);
                }
                changed = stop.changed() => {
                    if changed.is_err() {
                        // The sender is gone: as good as a stop.
                        break;
                    }
                }
            }
        }
        listening.abort();
        // Intake is not held back for a worker that no longer claims.
        self.pacing.stopped();
        let _ = reporting.await;
        while in_flight.next_ended(&mut ended).await {}
        if !ended.is_empty() {
            match self.store.finish_attempts(&self.claimant, &ended).await {
                Ok(kept) => self.warn_of_lapsed(&ended, &kept),
                Err(err) => self.unrecorded(&ended, &err),
            }
        }
        tracing::info!("delivery worker stopped");
    }

    /// One step: records the attempts that ended, claims due deliveries for the free slots and
    /// starts them; returns how long to wait before the next step, should no attempt end and no
    /// wake come first (`None` when every slot is taken).
    async fn step(
        self: &Arc<Self>,
        in_flight: &mut InFlight<FinishedAttempt>,
        ended: Vec<FinishedAttempt>,
    ) -> Option<Duration> {
        let now = self.clock.now();
        let claim = self.claim(now, in_flight.free());
        let poll = self.config.poll_interval;
        let started = Instant::now();
        let step = self
            .store
            .finish_and_claim(&self.claimant, &ended, claim)
            .await;
        self.metrics.delivery_step(started.elapsed());
        match step {
            Ok(step) => {
                self.warn_of_lapsed(&ended, &step.kept);
                self.pacing.claimed(&step.claimed, now);
                self.start(in_flight, step.claimed, now);
                (in_flight.free() > 0)
                    .then(|| idle_wait(step.next_due, now, self.clock.now(), poll))
            }
            Err(err) => {
                self.unrecorded(&ended, &err);
                Some(poll)
            }
        }
    }

    /// Starts an attempt on each claimed delivery; a retry is scheduled from `now`, when the
    /// attempt starts.
    fn start(
        self: &Arc<Self>,
        in_flight: &mut InFlight<FinishedAttempt>,
        claimed: Vec<ClaimedDelivery>,
        now: OffsetDateTime,
    ) {
        for delivery in claimed {
            let worker = self.clone();
            let underway = self.pacing.underway(&delivery.partner_id);
            in_flight.start(async move {
                let finished = worker.attempt(delivery, now).await;
                let took = u64::try_from(finished.attempt.duration_ms).unwrap_or(0);
                underway.ended(Duration::from_millis(took));
                finished
            });
        }
    }

    fn warn_of_lapsed(&self, ended: &[FinishedAttempt], kept: &[bool]) {
        for (finished, _) in ended.iter().zip(kept).filter(|(_, kept)| !**kept) {
            tracing::warn!(delivery = %finished.delivery_id, "the claim lapsed during the attempt; its new holder decides");
        }
    }

    /// Outcomes that could not be recorded: their deliveries stay claimed until the leases
    /// lapse, and are then sent again under the same `webhook-id`.
    fn unrecorded(&self, ended: &[FinishedAttempt], err: &crate::store::StoreError) {
        tracing::error!(
            error = format!("{err:#}"),
            unrecorded = ended.len(),
            "could not record attempts and claim deliveries"
        );
    }

    /// What a claim at `now` for `slots` free slots asks for.
    fn claim(&self, now: OffsetDateTime, slots: usize) -> ClaimRequest {
        ClaimRequest {
            now,
            lease_until: now + self.config.lease,
            limit: slots as i64,
            per_partner_limit: self.config.partner_concurrency.max(1) as i64,
        }
    }

    fn slots(&self) -> usize {
        self.config.concurrency.max(1)
    }

    /// Sends one delivery; returns the attempt, for the worker to record.
    async fn attempt(
        &self,
        delivery: ClaimedDelivery,
        started_at: OffsetDateTime,
    ) -> FinishedAttempt {
        let number = delivery.attempts + 1;
        // The exported client span of the postback, whose context the request carries
        // (`traceparent`); none at all when traces are not exported.
        let span = match traces::enabled() {
            true => {
                tracing::info_span!("delivery attempt", otel.name = "POST", otel.kind = "client",
                delivery = %delivery.id, partner = %delivery.partner_id, attempt = number)
            }
            false => Span::none(),
        };
        let clock = Instant::now();
        let sent = self.send(&delivery, &span).instrument(span.clone()).await;
        let elapsed = clock.elapsed();
        let (verdict, status_code, error, excerpt, retry_after) = match sent {
            Sent::Answered {
                status,
                retry_after,
                excerpt,
            } => {
                let verdict = Verdict::of_status(status);
                let error = (verdict != Verdict::Delivered)
                    .then(|| format!("the partner answered HTTP {status}"));
                (
                    verdict,
                    Some(i64::from(status)),
                    error,
                    Some(excerpt),
                    retry_after,
                )
            }
            Sent::Unreachable(why) => (Verdict::Retry, None, Some(why), None, None),
            Sent::Impossible(why) => (Verdict::Failed, None, Some(why), None, None),
        };
        let (next, outcome, error) = match verdict {
            Verdict::Delivered => (DeliveryNext::Delivered, verdict, error),
            Verdict::Failed => (DeliveryNext::Failed, verdict, error),
            Verdict::Gone => (DeliveryNext::Gone, verdict, error),
            Verdict::Retry => {
                let failed = number - delivery.replayed_after;
                let delay = next_delay(
                    &self.config.schedule,
                    failed,
                    retry_after,
                    &mut rand::thread_rng(),
                );
                match delay {
                    Some(delay) => (DeliveryNext::RetryAt(started_at + delay), verdict, error),
                    None => (
                        DeliveryNext::Failed,
                        Verdict::Failed,
                        error.map(|e| format!("{e}; no retries left")),
                    ),
                }
            }
        };
        self.metrics
            .delivery_attempted(&delivery.partner_id, outcome.as_str(), elapsed);
        if let Some(status) = status_code {
            traces::set_attribute(&span, "http.response.status_code", status);
        }
        if let (Verdict::Retry | Verdict::Failed | Verdict::Gone, Some(error)) = (outcome, &error) {
            traces::set_error(&span, error);
        }
        tracing::info!(
            delivery = %delivery.id,
            partner = %delivery.partner_id,
            attempt = number,
            outcome = outcome.as_str(),
            status = status_code,
            latency_ms = telemetry::millis(elapsed),
            "delivery attempt"
        );
        let record = AttemptRecord {
            attempt: number,
            started_at,
            duration_ms: elapsed.as_millis().min(i64::MAX as u128) as i64,
            status_code,
            error,
            response_body: excerpt.filter(|text| !text.is_empty()),
            outcome: outcome.as_str().to_owned(),
        };
        FinishedAttempt {
            delivery_id: delivery.id,
            attempt: record,
            next,
        }
    }
}
