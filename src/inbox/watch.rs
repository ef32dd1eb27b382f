//! One user's view of the feed: the live stream's changes, each with the position a client
//! resumes from, and the replay of what a resuming client missed.
//!
//! A stream starts by reading the feed's position `L`, then listening: whatever the feed hands
//! out after that lies above `L`. A client resuming from `P` first gets the user's events above
//! `P` from the outbox (all committed: every id up to `L` was, and later ones are read as they
//! are), then the live ones, less those the replay already told (ids above `L` it read). A
//! replayed event's position is `min(id, L)` — never above an id that may still commit — and
//! never below `P`; a live event's is the feed's. So a client that drops and resumes misses
//! nothing, and may be told again of an event it had: events carry the alert as it is *now*
//! (the item, the unread count), so a repeat changes nothing.
//!
//! A stream that falls behind the feed (its buffer overflowed) does the same from its last
//! position instead of giving up, so that it too loses nothing.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, OnceLock},
};

use tokio::sync::{OnceCell, broadcast::error::RecvError};

use super::{InboxService, feed::Listener};
use crate::store::{
    EVENT_ALERT_CREATED, EVENT_ALERT_READ, EVENT_ALERT_SNOOZED, EVENT_ALERT_UNSNOOZED,
    EVENT_ALERT_UPDATED, InboxItem, InboxOwner, OutboxEvent, StoreResult,
};

/// Events replayed per query.
const REPLAY_PAGE: i64 = 500;

/// A change of a user's inbox, as the live stream tells it.
#[derive(Debug)]
pub enum InboxChange {
    /// A change of one alert, and the position a client resumes from after it.
    Alert {
        change: Arc<AlertChange>,
        position: i64,
    },
    /// Changes may have been missed (they could not be read): reload the inbox.
    Resync { position: i64 },
}

/// What became of one alert of a user's inbox with one outbox event. It is the same for every
/// stream of that user, so the user's streams share one: read once from the store by the first
/// stream that tells the event, and rendered once by the surface (`rendered`). A user with
/// hundreds of tabs open then costs two queries and one rendering per event, not per tab.
#[derive(Debug)]
pub struct AlertChange {
    /// `alert.created`, `alert.updated`, `alert.read`, `alert.snoozed`, `alert.unsnoozed`,
    /// `alert.expired`, `alert.dismissed` or `alert.withdrawn`.
    pub event_type: String,
    pub alert_id: String,
    /// The alert as the inbox now shows it (none once it has left the inbox: after the last
    /// three, always).
    pub item: Option<InboxItem>,
    pub unread_count: i64,
    /// The surface's rendering of the change, made by the first stream that sends it.
    pub rendered: OnceLock<String>,
}

/// Where the streams of one user share the change an event made (see [`AlertChange`]).
pub(super) type SharedChange = OnceCell<Arc<AlertChange>>;

/// How a stream opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// No position given: the client loads the inbox itself.
    Fresh,
    /// The events after the client's position follow.
    Resumed,
    /// The client's position cannot be served (not one of this database's): reload the inbox.
    Resync,
}

pub struct InboxWatch {
    pub(super) service: Arc<InboxService>,
    pub(super) owner: InboxOwner,
    listener: Listener,
    /// The position last told to the client.
    position: i64,
    /// The feed's position read before listening: live events lie above it.
    bound: i64,
    /// Replayed events not yet told, each with its position.
    replay: VecDeque<(OutboxEvent, i64)>,
    /// Where the replay goes on, while it has not reached the end of the outbox.
    replay_from: Option<i64>,
    /// Replayed ids above `bound`: they will come live too, and are not told twice.
    replayed: HashSet<i64>,
}

impl InboxWatch {
    /// Listens to the feed from now on; with `resume_from`, replays the owner's events after it
    /// first.
    pub(super) fn start(
        service: Arc<InboxService>,
        owner: InboxOwner,
        resume_from: Option<i64>,
    ) -> InboxWatch {
        let bound = service.feed.position();
        let listener = service.feed.listen();
        InboxWatch {
            service,
            owner,
            listener,
            position: resume_from.unwrap_or(bound),
            bound,
            replay: VecDeque::new(),
            replay_from: resume_from,
            replayed: HashSet::new(),
        }
    }

    /// The position to tell the client now (before any change: where the stream starts).
    pub fn position(&self) -> i64 {
        self.position
    }

    /// The next change of this inbox; `None` when the server shuts down.
    pub async fn next(&mut self) -> Option<InboxChange> {
        loop {
            if let Some((event, position)) = self.replay.pop_front() {
                return Some(self.describe(&event, position, None).await);
            }
            if let Some(from) = self.replay_from {
                if let Err(change) = self.read_replay(from).await {
                    return Some(change);
                }
                continue;
            }
            let received = tokio::select! {
                _ = self.listener.closed.wait_for(|closed| *closed) => return None,
                received = self.listener.events.recv() => received,
            };
            let handed = match received {
                Ok(handed) => handed,
                Err(RecvError::Lagged(_)) => {
                    self.catch_up();
                    continue;
                }
                Err(RecvError::Closed) => return None,
            };
            let event = &handed.event;
            if event.company_id != self.owner.company_id || event.user_id != self.owner.user_id {
                continue;
            }
            if self.replayed.remove(&event.id) {
                continue;
            }
            let position = handed.position.max(self.position);
            // Every stream that gets this far with the event is this user's: they share it.
            return Some(self.describe(event, position, Some(&handed.change)).await);
        }
    }

    /// Fell behind the feed: listen anew and replay from the last position told.
    fn catch_up(&mut self) {
        self.bound = self.service.feed.position();
        self.listener = self.service.feed.listen();
        self.replay.clear();
        self.replayed.clear();
        self.replay_from = Some(self.position);
    }

    /// Reads the next page of the replay; on failure the client is told to reload.
    async fn read_replay(&mut self, from: i64) -> Result<(), InboxChange> {
        let page = match self
            .service
            .store
            .inbox_events_after(&self.owner, from, REPLAY_PAGE)
            .await
        {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!(error = %err, "inbox stream: reading the replay failed");
                // Reloading covers everything committed so far: the feed's position will do.
                self.replay_from = None;
                self.position = self.service.feed.position().max(self.position);
                return Err(InboxChange::Resync {
                    position: self.position,
                });
            }
        };
        self.replay_from = match page.last() {
            Some(last) if page.len() as i64 == REPLAY_PAGE => Some(last.id),
            _ => None,
        };
        let floor = self.position;
        for event in page {
            if event.id > self.bound {
                self.replayed.insert(event.id);
            }
            let position = event.id.min(self.bound).max(floor);
            self.replay.push_back((event, position));
        }
        Ok(())
    }

    /// The change `event` made, told at `position`; `shared` where the user's other streams
    /// may have read it already (a live event), none for a replayed one (this stream's alone).
    async fn describe(
        &mut self,
        event: &OutboxEvent,
        position: i64,
        shared: Option<&SharedChange>,
    ) -> InboxChange {
        self.position = position;
        let change = match shared {
            Some(shared) => shared
                .get_or_try_init(|| read_change(&self.service, &self.owner, event))
                .await
                .cloned(),
            None => read_change(&self.service, &self.owner, event).await,
        };
        match change {
            Ok(change) => InboxChange::Alert { change, position },
            Err(err) => {
                // Not kept: the user's next stream to tell the event reads it again.
                tracing::warn!(error = %err, "inbox stream: reading a changed alert failed");
                InboxChange::Resync { position }
            }
        }
    }
}

/// Reads what `event` made of the owner's alert: the item as the inbox now shows it, and the
/// unread count (both at once).
async fn read_change(
    service: &InboxService,
    owner: &InboxOwner,
    event: &OutboxEvent,
) -> StoreResult<Arc<AlertChange>> {
    let store = &service.store;
    let now = service.clock.now();
    let shows_item = matches!(
        event.event_type.as_str(),
        EVENT_ALERT_CREATED
            | EVENT_ALERT_UPDATED
            | EVENT_ALERT_READ
            | EVENT_ALERT_SNOOZED
            | EVENT_ALERT_UNSNOOZED
    );
    let item = async {
        match shows_item {
            true => store.inbox_item(owner, &event.alert_id, now).await,
            false => Ok(None),
        }
    };
    let (item, unread_count) = tokio::join!(item, store.inbox_unread_count(owner, now));
    Ok(Arc::new(AlertChange {
        event_type: event.event_type.clone(),
        alert_id: event.alert_id.clone(),
        item: item?,
        unread_count: unread_count?,
        rendered: OnceLock::new(),
    }))
}
