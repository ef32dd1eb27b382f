//! How far the feeds are final: the publisher reads only events below this horizon, in id
//! order, so it never publishes an event and later finds one with a lower id (PostgreSQL's
//! late commits), and never skips one. See `store::OutboxHorizon`.

use crate::store::{Finality, OutboxHorizon};

/// The highest id of each feed up to which every event that will ever exist is visible.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Settled {
    pub alerts: i64,
    pub company: i64,
}

#[derive(Debug, Default)]
pub struct Horizon {
    settled: Settled,
    /// Heads seen, final once a later observation's oldest running transaction is past the
    /// counter value noted with them.
    pending: Option<(Settled, u64)>,
}

impl Horizon {
    /// What the next observation should look past: a counter is worth taking only for heads
    /// beyond those settled, and not at all while earlier heads wait to settle.
    pub fn beyond(&self) -> (i64, i64) {
        match self.pending {
            Some(_) => (i64::MAX, i64::MAX),
            None => (self.settled.alerts, self.settled.company),
        }
    }

    /// Takes in an observation; returns what is settled now.
    pub fn observe(&mut self, seen: &OutboxHorizon) -> Settled {
        let heads = Settled {
            alerts: seen.alerts_head,
            company: seen.company_head,
        };
        if let Some((pending, counter)) = self.pending
            && seen.oldest_running > counter
        {
            self.settle(pending);
            self.pending = None;
        }
        match seen.finality {
            Finality::Now => {
                self.settle(heads);
                self.pending = None;
            }
            // One observation waits at a time: replacing it with each newer one would never
            // settle anything while transactions keep overlapping.
            Finality::After(counter) if self.pending.is_none() && heads != self.settled => {
                self.pending = Some((heads, counter));
            }
            Finality::After(_) | Finality::Unknown => {}
        }
        self.settled
    }

    /// Whether heads seen are waiting to settle (the caller looks again soon).
    pub fn waiting(&self) -> bool {
        self.pending.is_some()
    }

    fn settle(&mut self, heads: Settled) {
        self.settled.alerts = self.settled.alerts.max(heads.alerts);
        self.settled.company = self.settled.company.max(heads.company);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(alerts: i64, finality: Finality, oldest_running: u64) -> OutboxHorizon {
        OutboxHorizon {
            alerts_head: alerts,
            company_head: 0,
            finality,
            oldest_running,
        }
    }

    use Finality::{After, Now, Unknown};

    #[test]
    fn one_writer_in_id_order_settles_at_once() {
        let mut horizon = Horizon::default();
        assert_eq!(horizon.observe(&seen(5, Now, 0)).alerts, 5);
        assert_eq!(horizon.observe(&seen(9, Now, 0)).alerts, 9);
        assert!(!horizon.waiting());
    }

    #[test]
    fn heads_settle_once_every_transaction_running_then_has_ended() {
        let mut horizon = Horizon::default();
        // Id 10 is visible; transactions up to counter 100 may still commit lower ids.
        assert_eq!(horizon.beyond(), (0, 0));
        assert_eq!(horizon.observe(&seen(10, After(100), 90)).alerts, 0);
        assert!(horizon.waiting());
        assert_eq!(
            horizon.beyond(),
            (i64::MAX, i64::MAX),
            "no counter while one waits"
        );
        // Transaction 95 still runs: nothing settles.
        assert_eq!(horizon.observe(&seen(12, Unknown, 95)).alerts, 0);
        // Every transaction up to 100 has ended.
        assert_eq!(horizon.observe(&seen(12, Unknown, 101)).alerts, 10);
        assert!(!horizon.waiting());
        assert_eq!(horizon.beyond(), (10, 0));
        assert_eq!(horizon.observe(&seen(12, After(108), 101)).alerts, 10);
        assert_eq!(horizon.observe(&seen(12, Unknown, 109)).alerts, 12);
        // Nothing new: no counter asked, nothing waits.
        assert_eq!(horizon.observe(&seen(12, Unknown, 120)).alerts, 12);
        assert!(!horizon.waiting());
    }

    #[test]
    fn it_never_goes_back() {
        let mut horizon = Horizon::default();
        horizon.observe(&seen(10, Now, 0));
        assert_eq!(horizon.observe(&seen(3, Now, 0)).alerts, 10);
    }
}
