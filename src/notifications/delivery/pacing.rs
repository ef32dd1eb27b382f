//! Pacing company-event intake to the delivery worker.
//!
//! Recording an event is cheaper than delivering it, so a publisher sending as fast as the
//! server answers can outrun the worker on the same machine (both share its cores): the
//! deliveries still owed then pile up, and every notification arrives later for as long as the
//! publishing lasts. So the worker reports how long the deliveries it claims had waited for it
//! (its lag), and while that lag is above the limit a publish waits before it is recorded, at
//! most [`PACING_WAIT`]: a publisher that waits for each answer slows to the pace the
//! deliveries keep, and the lag stays near the limit. A publish is never refused for it.
//!
//! Only the lag a slower intake would cure counts: that of deliveries to partners whose recent
//! attempts took no longer than the limit, claimed while the partners slower than that left the
//! others at least a partner's share of the slots. A slow partner's backlog is held back by its
//! share, and a worker whose slots slow partners hold falls behind however slowly events come.

use std::{collections::HashMap, sync::Arc, sync::Mutex, time::Duration};

use time::OffsetDateTime;
use tokio::sync::watch;

use crate::{store::ClaimedDelivery, telemetry::Metrics};

/// The longest a publish waits for the worker to catch up; then it is recorded anyway.
pub const PACING_WAIT: Duration = Duration::from_secs(1);

/// What the worker knows of one partner's attempts.
#[derive(Default)]
struct PartnerPace {
    /// Its recent attempts' duration, smoothed (`None` before the first ends).
    typical: Option<Duration>,
    /// Its attempts this worker has under way.
    in_flight: usize,
}

pub struct Pacing {
    /// Zero: intake is never held back.
    limit: Duration,
    /// The most slots slow partners may hold while the others keep a partner's share: the
    /// worker's slots less one share.
    room_for_slow: usize,
    /// How long a publish waits at most ([`PACING_WAIT`]; shorter in tests).
    wait: Duration,
    lag: watch::Sender<Duration>,
    partners: Mutex<HashMap<String, PartnerPace>>,
    metrics: Arc<Metrics>,
}

/// Counts an attempt as under way until dropped (also when its task panics).
pub(super) struct Underway {
    pacing: Arc<Pacing>,
    partner: String,
}

impl Drop for Underway {
    fn drop(&mut self) {
        if let Some(pace) = self.pacing.lock().get_mut(&self.partner) {
            pace.in_flight = pace.in_flight.saturating_sub(1);
        }
    }
}

impl Underway {
    /// The attempt ended after `took`.
    pub(super) fn ended(self, took: Duration) {
        // `underway` entered the partner, and entries are never removed.
        if let Some(pace) = self.pacing.lock().get_mut(&self.partner) {
            // A moving average over the last few attempts (weight 1/8): one slow answer does
            // not make a partner slow, a run of them does.
            pace.typical = Some(match pace.typical {
                Some(typical) => typical.mul_f64(0.875) + took.mul_f64(0.125),
                None => took,
            });
        }
    }
}

impl Pacing {
    /// `slots` of the worker, of which one partner may hold `partner_share`.
    pub(super) fn new(
        limit: Duration,
        slots: usize,
        partner_share: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Pacing {
            limit,
            room_for_slow: slots.saturating_sub(partner_share),
            wait: PACING_WAIT,
            lag: watch::channel(Duration::ZERO).0,
            partners: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PartnerPace>> {
        // A panic while holding it left counts, not invariants: carry on with them.
        self.partners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An attempt to `partner` starts; it counts as under way until the guard is dropped.
    pub(super) fn underway(self: &Arc<Self>, partner: &str) -> Underway {
        let partner = partner.to_owned();
        let mut partners = self.lock();
        match partners.get_mut(&partner) {
            Some(pace) => pace.in_flight += 1,
            None => {
                let first = PartnerPace {
                    typical: None,
                    in_flight: 1,
                };
                partners.insert(partner.clone(), first);
            }
        }
        drop(partners);
        Underway {
            pacing: self.clone(),
            partner,
        }
    }

    /// A step claimed `claimed` at `now` (before starting them): the worker's lag, published to
    /// the intake and returned.
    pub(super) fn claimed(&self, claimed: &[ClaimedDelivery], now: OffsetDateTime) -> Duration {
        let lag = self.lag_of(claimed, now);
        self.publish_lag(lag);
        lag
    }

    fn lag_of(&self, claimed: &[ClaimedDelivery], now: OffsetDateTime) -> Duration {
        let partners = self.lock();
        let slow = |pace: &PartnerPace| pace.typical.is_some_and(|typical| typical > self.limit);
        let in_flight = |slow_ones: bool| -> usize {
            partners
                .values()
                .filter(|pace| slow(pace) == slow_ones)
                .map(|pace| pace.in_flight)
                .sum()
        };
        if in_flight(true) > self.room_for_slow {
            return Duration::ZERO;
        }
        let longest = claimed
            .iter()
            .filter(|delivery| !partners.get(&delivery.partner_id).is_some_and(slow))
            .map(|delivery| Duration::try_from(now - delivery.due_at).unwrap_or(Duration::ZERO))
            .max();
        match longest {
            Some(longest) => longest,
            // Nothing to claim while prompt partners have attempts under way may be their share
            // holding the rest back: the last lag stands until those attempts end (soon: they
            // are prompt). Without any, the worker has caught up.
            None if in_flight(false) > 0 => *self.lag.borrow(),
            None => Duration::ZERO,
        }
    }

    /// How far behind the worker may fall before intake waits (zero: it never does).
    pub(super) fn limit(&self) -> Duration {
        self.limit
    }

    /// The worker's lag as each step publishes it.
    pub(super) fn watch_lag(&self) -> watch::Receiver<Duration> {
        self.lag.subscribe()
    }

    /// Paces intake by `lag` from now on, and shows it on the gauge: this worker's own (see
    /// `claimed`), or on an instance without a worker the largest the workers of the others
    /// reported (see `shared_lag`).
    pub(super) fn publish_lag(&self, lag: Duration) {
        self.lag.send_if_modified(|current| {
            let changed = *current != lag;
            *current = lag;
            changed
        });
        self.metrics
            .set_gauge("maestro_delivery_worker_lag_seconds", lag.as_secs_f64());
    }

    /// The worker stops claiming (shutdown): it no longer paces anything.
    pub(super) fn stopped(&self) {
        self.lag.send_replace(Duration::ZERO);
    }

    /// Waits, at most [`PACING_WAIT`], while the worker is further behind than the limit.
    pub(super) async fn admit(&self) {
        if self.limit.is_zero() || *self.lag.borrow() <= self.limit {
            return;
        }
        let mut lag = self.lag.subscribe();
        let limit = self.limit;
        let waiting = self.metrics.company_event_waiting();
        let caught_up = tokio::time::timeout(self.wait, lag.wait_for(|lag| *lag <= limit))
            .await
            .is_ok_and(|seen| seen.is_ok());
        drop(waiting);
        self.metrics.company_event_paced(caught_up);
    }
}

#[cfg(test)]
mod tests;
