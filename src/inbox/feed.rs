//! The live feed: one reader of the outbox per instance, handing each new event to every
//! connected inbox stream (which keeps its own user's). Reading the outbox rather than listening
//! to local writes is what makes a change made on another instance reach this one's users.
//!
//! A local change pokes the reader, so it is read at once; other instances' changes wake it
//! through the database's signal where it has one (PostgreSQL's `LISTEN`, see
//! `store::postgres::outbox_signal`), and are found by polling every `poll_interval` in any
//! case, should the signal be lost. With nobody connected the reader hands nothing out, but
//! still accounts for every id (below), so that its position stays exact for the next stream.
//!
//! PostgreSQL hands out outbox ids when rows are inserted, not when they commit: a transaction
//! may commit id 7 after another committed id 8. So the reader does not trust "everything after
//! the last id I saw": it re-reads from the lowest id it has not accounted for, skips events it
//! already handed out, and waits up to `gap_grace` for a missing id before deciding it will never
//! come (a rolled-back insert also leaves a hole).
//!
//! That lowest id is the feed's **position**: every event at or below it has been handed out
//! (or given up as never coming). It is what a stream event's `id:` carries (never the event's
//! own id, which may lie above an id still to commit), so a client that resumes from it misses
//! nothing; it may be told again of events above it that it already had.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{Mutex, Notify, broadcast, watch};

use super::watch::SharedChange;
use crate::store::{DynStore, OutboxEvent, OutboxSignal, StoreResult};

/// Events read per query.
const PAGE: i64 = 1000;
/// Ids read per query when no stream listens.
const ID_PAGE: i64 = 10_000;
/// How far below the head a starting feed begins accounting: on PostgreSQL an insert below the
/// head may still be about to commit, and the position must not claim it.
const START_MARGIN: i64 = 1000;
/// Events kept for a stream that is slow to take them; one that falls further behind is told to
/// reload instead.
const BUFFER: usize = 1024;

pub struct InboxFeed {
    store: DynStore,
    sender: broadcast::Sender<Arc<Handed>>,
    cursor: Mutex<Cursor>,
    /// The cursor's `low`, published after the events below it were sent.
    position: AtomicI64,
    wake: Notify,
    /// Other instances' events, announced; taken by `run`, which listens to it.
    signal: std::sync::Mutex<Option<Box<dyn OutboxSignal>>>,
    poll_interval: Duration,
    gap_grace: Duration,
    closed: watch::Sender<bool>,
    /// When the latest pass that read the outbox to its head began: every event committed
    /// before then has been handed out (or awaits a late commit below it).
    caught_up: std::sync::Mutex<Instant>,
}

/// An event as the feed hands it out, with the feed's position once it is sent: every event at
/// or below `position` has been sent by then (this one included, or after it in id order).
#[derive(Debug)]
pub struct Handed {
    pub event: OutboxEvent,
    pub position: i64,
    /// What the event made of its alert, read by the first of its user's streams to tell it.
    pub(super) change: SharedChange,
}

/// What a stream listens to: the events, and the end of the feed (shutdown).
pub struct Listener {
    pub events: broadcast::Receiver<Arc<Handed>>,
    pub closed: watch::Receiver<bool>,
}

impl InboxFeed {
    /// A feed that starts near the current head of the outbox. With `listen` (an instance
    /// that will `run` it) it listens to the database's signal before returning, so that
    /// whatever commits after is announced to it; an instance that never runs the feed must
    /// not listen, as PostgreSQL keeps the announcements a listener does not take.
    pub async fn start(
        store: DynStore,
        poll_interval: Duration,
        gap_grace: Duration,
        listen: bool,
    ) -> StoreResult<Arc<InboxFeed>> {
        let head = (store.outbox_head().await? - START_MARGIN).max(0);
        let signal = match listen {
            true => store.outbox_signal().await,
            false => None,
        };
        let feed = Arc::new(InboxFeed {
            store,
            sender: broadcast::channel(BUFFER).0,
            cursor: Mutex::new(Cursor::at(head)),
            position: AtomicI64::new(head),
            wake: Notify::new(),
            signal: std::sync::Mutex::new(signal),
            poll_interval,
            gap_grace,
            closed: watch::channel(false).0,
            caught_up: std::sync::Mutex::new(Instant::now()),
        });
        // Nobody listens yet: the margin is accounted for, not handed out.
        feed.run_once().await?;
        Ok(feed)
    }

    pub fn listen(&self) -> Listener {
        Listener {
            events: self.sender.subscribe(),
            closed: self.closed.subscribe(),
        }
    }

    /// Every outbox id at or below this has been handed out (or given up): where a stream that
    /// starts now stands. Read it *before* listening: whatever is handed out after the read
    /// lies above it.
    pub fn position(&self) -> i64 {
        self.position.load(Ordering::Acquire)
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
    ///
    /// With nobody listening the events are only accounted for, not sent: they are history to
    /// the next stream, which loads the inbox (or resumes) from the position.
    pub async fn run_once(&self) -> StoreResult<usize> {
        let started = Instant::now();
        let handed_out = self.read_to_head().await?;
        *self.caught_up.lock().expect("feed lock poisoned") = started;
        Ok(handed_out)
    }

    async fn read_to_head(&self) -> StoreResult<usize> {
        let mut cursor = self.cursor.lock().await;
        let listening = self.sender.receiver_count() > 0;
        if !listening && cursor.seen.is_empty() && self.store.outbox_head().await? <= cursor.low {
            return Ok(0);
        }
        let mut fresh = Vec::new();
        let mut from = cursor.low;
        loop {
            // With nobody to hand them to, the ids alone will do (an index-only read).
            let (ids, events) = if listening {
                let events = self.store.outbox_after(from, PAGE).await?;
                (events.iter().map(|event| event.id).collect(), events)
            } else {
                (
                    self.store.outbox_ids_after(from, ID_PAGE).await?,
                    Vec::new(),
                )
            };
            let full = ids.len() as i64 == if listening { PAGE } else { ID_PAGE };
            if let Some(&last) = ids.last() {
                from = last;
            }
            if listening {
                fresh.extend(cursor.absorb(events));
            } else {
                cursor.absorb_ids(&ids);
            }
            if !full {
                break;
            }
        }
        cursor.settle(Instant::now(), self.gap_grace);
        let low = cursor.low;
        let mut handed_out = 0;
        if listening {
            for event in fresh {
                // In id order, so every id at or below min(its id, low) has been sent by now.
                let position = event.id.min(low);
                // No receiver left is not an error: the events were for nobody.
                let _ = self.sender.send(Arc::new(Handed {
                    event,
                    position,
                    change: SharedChange::new(),
                }));
                handed_out += 1;
            }
        }
        self.position.store(low, Ordering::Release);
        Ok(handed_out)
    }

    /// Runs passes until `stop` turns true: after a poke (a local change, or the database's
    /// signal of any instance's), or every `poll_interval`.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let signal = self.signal.lock().expect("feed lock poisoned").take();
        // A task of its own, so that a pass or a poke never interrupts the signal's reconnection.
        let listening =
            signal.map(|signal| tokio::spawn(self.clone().follow(signal, stop.clone())));
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
        if let Some(listening) = listening {
            let _ = listening.await;
        }
        self.close();
    }

    /// Pokes the feed whenever the database announces a change, until `stop` turns true.
    async fn follow(
        self: Arc<Self>,
        mut signal: Box<dyn OutboxSignal>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                () = signal.changed() => self.poke(),
            }
        }
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

    /// Accounts for ids that are handed to nobody (no stream listens).
    fn absorb_ids(&mut self, ids: &[i64]) {
        for &id in ids {
            if id == self.low + 1 && self.seen.is_empty() {
                // The usual case, ids in a row: no set to keep.
                self.low = id;
            } else if id > self.low {
                self.seen.insert(id);
            }
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
}
