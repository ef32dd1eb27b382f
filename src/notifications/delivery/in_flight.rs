//! The delivery worker's attempts in flight, and how long an idle worker waits before it looks
//! for work again.
//!
//! The worker keeps its slots busy rather than working in batches: an attempt that ends frees
//! its slot for the next due delivery at once, so one slow partner holds only its own slots.
//! What an attempt gives back (`T`: its outcome, to record) is the worker's to record.

use std::{future::Future, time::Duration};

use time::OffsetDateTime;
use tokio::task::{JoinError, JoinSet};

/// Attempts under way, at most `slots` of them.
pub(super) struct InFlight<T> {
    attempts: JoinSet<T>,
    slots: usize,
}

impl<T: Send + 'static> InFlight<T> {
    pub(super) fn new(slots: usize) -> Self {
        InFlight {
            attempts: JoinSet::new(),
            slots,
        }
    }

    /// Slots no attempt holds: how many deliveries to claim next.
    pub(super) fn free(&self) -> usize {
        self.slots.saturating_sub(self.attempts.len())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.attempts.is_empty()
    }

    /// Attempts under way.
    pub(super) fn len(&self) -> usize {
        self.attempts.len()
    }

    pub(super) fn start(&mut self, attempt: impl Future<Output = T> + Send + 'static) {
        self.attempts.spawn(attempt);
    }

    /// Waits for the next attempt to end, and adds what it gave back to `ended`; false when
    /// none is in flight.
    pub(super) async fn next_ended(&mut self, ended: &mut Vec<T>) -> bool {
        match self.attempts.join_next().await {
            Some(done) => {
                ended.extend(settle(done));
                true
            }
            None => false,
        }
    }

    /// Adds what the attempts that ended meanwhile gave back to `ended`, without waiting:
    /// slots freed together are filled by one claim.
    pub(super) fn collect_ended(&mut self, ended: &mut Vec<T>) {
        while let Some(done) = self.attempts.try_join_next() {
            ended.extend(settle(done));
        }
    }
}

/// A task that panicked gives nothing back: its delivery stays claimed until the lease lapses,
/// then is sent again.
fn settle<T>(done: Result<T, JoinError>) -> Option<T> {
    done.map_err(|err| tracing::error!(error = %err, "a delivery task failed"))
        .ok()
}

/// How long a worker whose claim at `claimed_at` left slots free waits before claiming again,
/// unless an attempt ends or it is woken first: until the next delivery falls due, at most
/// `poll`. A delivery that was due at the claim and yet not taken is held back by its
/// partner's limit (or by another instance's lock); only an attempt that ends frees its
/// partner's room, here (the worker hears of it) or on another instance (within `poll`).
pub(super) fn idle_wait(
    next_due: Option<OffsetDateTime>,
    claimed_at: OffsetDateTime,
    now: OffsetDateTime,
    poll: Duration,
) -> Duration {
    match next_due {
        Some(due) if due > claimed_at => Duration::try_from(due - now)
            .unwrap_or(Duration::ZERO)
            .min(poll),
        _ => poll,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use tokio::sync::oneshot;

    use super::*;
    use crate::store::DeliveryNext;

    const POLL: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn a_slot_is_free_again_as_soon_as_its_attempt_ends() {
        let mut in_flight = InFlight::new(2);
        assert_eq!(in_flight.free(), 2);
        let (finish_first, first) = oneshot::channel::<DeliveryNext>();
        let (_finish_second, second) = oneshot::channel::<DeliveryNext>();
        in_flight.start(async move { first.await.ok() });
        in_flight.start(async move { second.await.ok() });
        assert_eq!(in_flight.free(), 0);
        finish_first.send(DeliveryNext::Delivered).unwrap();
        // The other attempt is still under way: one ending is enough to claim again.
        let mut ended = Vec::new();
        assert!(in_flight.next_ended(&mut ended).await);
        assert_eq!(ended, [Some(DeliveryNext::Delivered)]);
        assert_eq!(in_flight.free(), 1);
        assert!(!in_flight.is_empty());
    }

    #[tokio::test]
    async fn attempts_that_ended_together_free_their_slots_together() {
        let mut in_flight = InFlight::new(3);
        let (finish, ended) = tokio::sync::watch::channel(false);
        for _ in 0..3 {
            let mut ended = ended.clone();
            in_flight.start(async move {
                ended.wait_for(|done| *done).await.unwrap();
                DeliveryNext::Delivered
            });
        }
        finish.send(true).unwrap();
        let mut ended = Vec::new();
        assert!(in_flight.next_ended(&mut ended).await);
        // The other two end too; collecting them never waits for one under way.
        let all_collected = async {
            while in_flight.free() < 3 {
                tokio::task::yield_now().await;
                in_flight.collect_ended(&mut ended);
            }
        };
        tokio::time::timeout(Duration::from_secs(5), all_collected)
            .await
            .expect("the attempts that ended are collected");
        assert!(in_flight.is_empty());
        assert_eq!(ended, [DeliveryNext::Delivered; 3]);
    }

    #[tokio::test]
    async fn an_attempt_that_panics_still_frees_its_slot() {
        let mut in_flight = InFlight::<DeliveryNext>::new(1);
        in_flight.start(async { panic!("a bug in an attempt") });
        let mut ended = Vec::new();
        assert!(in_flight.next_ended(&mut ended).await);
        assert!(ended.is_empty(), "nothing to record");
        assert_eq!(in_flight.free(), 1);
        assert!(!in_flight.next_ended(&mut ended).await);
    }

    #[test]
    fn an_idle_worker_waits_for_the_next_due_delivery_at_most_a_poll_interval() {
        let claimed_at = datetime!(2026-11-24 10:00:00 UTC);
        let now = claimed_at + Duration::from_millis(5);
        let soon = claimed_at + Duration::from_millis(300);
        assert_eq!(
            idle_wait(Some(soon), claimed_at, now, POLL),
            Duration::from_millis(295)
        );
        let later = claimed_at + Duration::from_secs(30);
        assert_eq!(idle_wait(Some(later), claimed_at, now, POLL), POLL);
        assert_eq!(idle_wait(None, claimed_at, now, POLL), POLL);
        // Fell due between the claim and now: claim again at once.
        let just_due = claimed_at + Duration::from_millis(2);
        assert_eq!(
            idle_wait(Some(just_due), claimed_at, now, POLL),
            Duration::ZERO
        );
    }

    #[test]
    fn a_delivery_held_back_by_its_partners_limit_does_not_keep_the_worker_spinning() {
        let claimed_at = datetime!(2026-11-24 10:00:00 UTC);
        let overdue = claimed_at - Duration::from_secs(60);
        assert_eq!(idle_wait(Some(overdue), claimed_at, claimed_at, POLL), POLL);
        assert_eq!(
            idle_wait(Some(claimed_at), claimed_at, claimed_at, POLL),
            POLL
        );
    }
}
