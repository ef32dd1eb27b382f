//! How far the feeds are final: the publisher reads only events below this horizon, in id
//! order, so it never publishes an event and later finds one with a lower id (PostgreSQL's
//! late commits), and never skips one. See `store::OutboxHorizon`.

use crate::store::OutboxHorizon;

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
        match seen.final_after {
            None => {
                self.settle(heads);
                self.pending = None;
            }
            // One observation waits at a time: replacing it with each newer one would never
            // settle anything while transactions keep overlapping.
            Some(counter) if self.pending.is_none() && heads != self.settled => {
                self.pending = Some((heads, counter));
            }
            Some(_) => {}
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

    fn seen(alerts: i64, final_after: Option<u64>, oldest_running: u64) -> OutboxHorizon {
        OutboxHorizon {
            alerts_head: alerts,
            company_head: 0,
            final_after,
            oldest_running,
        }
    }

    #[test]
    fn one_writer_in_id_order_settles_at_once() {
        let mut horizon = Horizon::default();
        assert_eq!(horizon.observe(&seen(5, None, 0)).alerts, 5);
        assert_eq!(horizon.observe(&seen(9, None, 0)).alerts, 9);
        assert!(!horizon.waiting());
    }

    #[test]
    fn heads_settle_once_every_transaction_running_then_has_ended() {
        let mut horizon = Horizon::default();
        // Id 10 is visible; transactions up to counter 100 may still commit lower ids.
        assert_eq!(horizon.observe(&seen(10, Some(100), 90)).alerts, 0);
        assert!(horizon.waiting());
        // Transaction 95 still runs: nothing settles, and the newer heads wait their turn.
        assert_eq!(horizon.observe(&seen(12, Some(104), 95)).alerts, 0);
        // Every transaction up to 100 has ended.
        assert_eq!(horizon.observe(&seen(12, Some(108), 101)).alerts, 10);
        assert!(horizon.waiting(), "and the newer heads wait in their turn");
        assert_eq!(horizon.observe(&seen(12, Some(110), 101)).alerts, 10);
        assert_eq!(horizon.observe(&seen(12, Some(112), 111)).alerts, 12);
    }

    #[test]
    fn it_never_goes_back() {
        let mut horizon = Horizon::default();
        horizon.observe(&seen(10, None, 0));
        assert_eq!(horizon.observe(&seen(3, None, 0)).alerts, 10);
    }
}
