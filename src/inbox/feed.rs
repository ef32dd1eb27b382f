//! The live feed: one reader of the outbox per instance, handing each new event to every
//! connected inbox stream (which keeps its own user's). Reading the outbox rather than listening
//! to local writes is what makes a change made on another instance reach this one's users.
//!
//! A local change pokes the reader, so it is read at once; other instances' changes are found
//! by polling every `poll_interval`. With nobody connected the reader only follows the head of
//! the outbox and reads no events.
//!
//! PostgreSQL hands out outbox ids when rows are inserted, not when they commit: a transaction
//! may commit id 7 after another committed id 8. So the reader does not trust "everything after
//! the last id I saw": it re-reads from the lowest id it has not accounted for, skips events it
//! already handed out, and waits up to `gap_grace` for a missing id before deciding it will never
//! come (a rolled-back insert also leaves a hole).

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{Mutex, Notify, broadcast, watch};

use crate::store::{DynStore, OutboxEvent, StoreResult};

/// Events read per query.
const PAGE: i64 = 1000;
/// Events kept for a stream that is slow to take them; one that falls further behind is told to
/// reload instead.
const BUFFER: usize = 1024;

pub struct InboxFeed {
    store: DynStore,
    sender: broadcast::Sender<Arc<OutboxEvent>>,
    cursor: Mutex<Cursor>,
    wake: Notify,
    poll_interval: Duration,
    gap_grace: Duration,
    closed: watch::Sender<bool>,
    /// When the latest pass that read the outbox to its head began: every event committed
    /// before then has been handed out (or awaits a late commit below it).
    caught_up: std::sync::Mutex<Instant>,
}

/// What a stream listens to: the events, and the end of the feed (shutdown).
pub struct Listener {
    pub events: broadcast::Receiver<Arc<OutboxEvent>>,
    pub closed: watch::Receiver<bool>,
}

impl InboxFeed {
    /// A feed that starts at the current head of the outbox.
    pub async fn start(
        store: DynStore,
        poll_interval: Duration,
        gap_grace: Duration,
    ) -> StoreResult<Arc<InboxFeed>> {
        let head = store.outbox_head().await?;
        Ok(Arc::new(InboxFeed {
            store,
            sender: broadcast::channel(BUFFER).0,
            cursor: Mutex::new(Cursor::at(head)),
            wake: Notify::new(),
            poll_interval,
            gap_grace,
            closed: watch::channel(false).0,
            caught_up: std::sync::Mutex::new(Instant::now()),
        }))
    }

    pub fn listen(&self) -> Listener {
        Listener {
            events: self.sender.subscribe(),
            closed: self.closed.subscribe(),
        }
    }

    /// A change was committed here: read the outbox now rather than at the next poll.
    pub fn poke(&self) {
        if self.sender.receiver_count() > 0 {
            self.wake.notify_one();
        }
    }

    /// Ends every stream (the server is shutting down).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// How long ago the latest pass that reached the head of the outbox began: how stale a
    /// live stream may be (a poll interval when all is well, more when the database fails).
    pub fn lag(&self) -> Duration {
        self.caught_up.lock().expect("feed lock poisoned").elapsed()
    }

    /// The live streams listening (each holds one receiver).
    pub fn streams(&self) -> usize {
        self.sender.receiver_count()
    }

    /// One pass: hands out the events committed since the last pass. Returns how many.
    pub async fn run_once(&self) -> StoreResult<usize> {
        let started = Instant::now();
        let handed_out = self.read_to_head().await?;
        *self.caught_up.lock().expect("feed lock poisoned") = started;
        Ok(handed_out)
    }

    async fn read_to_head(&self) -> StoreResult<usize> {
        let mut cursor = self.cursor.lock().await;
        if self.sender.receiver_count() == 0 {
            cursor.skip_to(self.store.outbox_head().await?);
            return Ok(0);
        }
        let mut handed_out = 0;
        let mut from = cursor.low;
        loop {
            let events = self.store.outbox_after(from, PAGE).await?;
            let full = events.len() as i64 == PAGE;
            if let Some(last) = events.last() {
                from = last.id;
            }
            for event in cursor.absorb(events) {
                // No receiver left is not an error: the events were for nobody.
                let _ = self.sender.send(Arc::new(event));
                handed_out += 1;
            }
            if !full {
                break;
            }
        }
        cursor.settle(Instant::now(), self.gap_grace);
        Ok(handed_out)
    }

    /// Runs passes until `stop` turns true: after a poke, or every `poll_interval`.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(err) = self.run_once().await {
                tracing::warn!(error = %err, "inbox feed: reading the outbox failed; will retry");
            }
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
        self.close();
    }
}

/// Which outbox ids have been handed out: all up to `low`, and those in `seen` above it.
#[derive(Debug)]
struct Cursor {
    low: i64,
    seen: BTreeSet<i64>,
    /// The first missing id above `low`, and since when it has been missing.
    gap: Option<(i64, Instant)>,
}

impl Cursor {
    fn at(head: i64) -> Cursor {
        Cursor {
            low: head,
            seen: BTreeSet::new(),
            gap: None,
        }
    }

    /// Nobody listens: what is in the outbox now is history.
    fn skip_to(&mut self, head: i64) {
        if head > self.low {
            *self = Cursor::at(head);
        }
    }

    /// The events not handed out before, in id order.
    fn absorb(&mut self, events: Vec<OutboxEvent>) -> Vec<OutboxEvent> {
        events
            .into_iter()
            .filter(|event| event.id > self.low && self.seen.insert(event.id))
            .collect()
    }

    /// Moves `low` over the ids accounted for; a hole older than `grace` counts as never coming.
    fn settle(&mut self, now: Instant, grace: Duration) {
        loop {
            while self.seen.remove(&(self.low + 1)) {
                self.low += 1;
            }
            let Some(&next) = self.seen.first() else {
                self.gap = None;
                return;
            };
            match self.gap {
                Some((missing, since)) if missing == self.low + 1 => {
                    if now.duration_since(since) < grace {
                        return;
                    }
                    tracing::debug!(from = missing, to = next - 1, "outbox ids never committed");
                    self.low = next - 1;
                    self.gap = None;
                }
                _ => {
                    self.gap = Some((self.low + 1, now));
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;

    fn event(id: i64) -> OutboxEvent {
        OutboxEvent {
            id,
            event_type: "alert.created".into(),
            alert_id: format!("a{id}"),
            revision: 1,
            partner_id: "p".into(),
            company_id: "c".into(),
            user_id: "u".into(),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn ids(events: Vec<OutboxEvent>) -> Vec<i64> {
        events.into_iter().map(|e| e.id).collect()
    }

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn a_late_commit_below_the_highest_id_is_still_handed_out_once() {
        let start = Instant::now();
        let mut cursor = Cursor::at(5);
        // 7 committed before 6.
        assert_eq!(ids(cursor.absorb(vec![event(7)])), [7]);
        cursor.settle(start, GRACE);
        assert_eq!(cursor.low, 5, "6 is awaited");
        // The next pass re-reads from 5: 7 again (skipped), and the late 6.
        assert_eq!(
            ids(cursor.absorb(vec![event(6), event(7), event(8)])),
            [6, 8]
        );
        cursor.settle(start + Duration::from_secs(1), GRACE);
        assert_eq!(cursor.low, 8);
        assert!(cursor.seen.is_empty());
    }

    #[test]
    fn a_hole_that_outlives_the_grace_is_given_up() {
        let start = Instant::now();
        let mut cursor = Cursor::at(0);
        cursor.absorb(vec![event(1), event(3)]);
        cursor.settle(start, GRACE);
        assert_eq!(cursor.low, 1);
        cursor.settle(start + GRACE / 2, GRACE);
        assert_eq!(cursor.low, 1, "still waiting for 2");
        cursor.settle(start + GRACE, GRACE);
        assert_eq!(cursor.low, 3, "2 will not come");
        assert_eq!(
            ids(cursor.absorb(vec![event(2), event(4)])),
            [4],
            "nor is it shown late"
        );
    }

    #[test]
    fn skipping_forgets_what_was_pending() {
        let mut cursor = Cursor::at(0);
        cursor.absorb(vec![event(2)]);
        cursor.settle(Instant::now(), GRACE);
        cursor.skip_to(10);
        assert_eq!(cursor.low, 10);
        assert!(cursor.seen.is_empty() && cursor.gap.is_none());
        cursor.skip_to(3);
        assert_eq!(cursor.low, 10, "never backwards");
    }
}
