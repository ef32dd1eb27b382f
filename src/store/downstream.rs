//! Downstream publishing's storage (SPEC §4.2): what the publisher reads — the outbox's alert
//! events and the company events, each in a feed ordered by a database id — and where it stands
//! in them, under a lease so that one instance publishes at a time. A trait of its own, which
//! [`super::Store`] extends, implemented by each backend in a file of its own.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{CompanyEventRecord, OutboxEvent, StoreResult};

/// How far the publisher has gone in each feed: every event with an id up to these is published
/// (or is not one to publish, or its id was never committed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishCursor {
    pub alerts_after: i64,
    pub company_after: i64,
}

/// What a claim of the publisher's lease found: the cursor, and whether the caller holds the
/// lease now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublisherClaim {
    pub cursor: PublishCursor,
    pub held: bool,
}

/// The ends of both feeds now, and when everything up to them is final — when no transaction
/// can still commit an event with a lower id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxHorizon {
    pub alerts_head: i64,
    pub company_head: i64,
    pub finality: Finality,
    /// The oldest transaction still running (PostgreSQL's snapshot `xmin`); 0 on SQLite.
    pub oldest_running: u64,
}

/// When the heads of an [`OutboxHorizon`] are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finality {
    /// At once: SQLite's one writer commits in id order, so what a reader sees is final.
    Now,
    /// PostgreSQL hands out ids before commit, so a transaction under way may still commit a
    /// lower one: the heads are final once a later observation's `oldest_running` is past this
    /// value of the transaction counter, taken now — every transaction that had started
    /// writing by now has ended.
    After(u64),
    /// Not asked: no head was past `beyond` (see [`DownstreamStore::outbox_horizon`]).
    Unknown,
}

/// An outbox event with what the publisher says of its alert as of the event.
#[derive(Clone, Debug, PartialEq)]
pub struct DownstreamAlertEvent {
    pub event: OutboxEvent,
    /// `None` only for an event written before the columns existed whose alert is gone.
    pub template_id: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
}

/// A company event in the company feed.
#[derive(Clone, Debug, PartialEq)]
pub struct DownstreamCompanyEvent {
    /// Its id in the feed (the event's own id is random).
    pub position: i64,
    pub event: CompanyEventRecord,
    pub received_at: OffsetDateTime,
}

#[async_trait]
pub trait DownstreamStore {
    /// Takes the publisher's lease for `owner` until `lease_until` when it is free, lapsed at
    /// `now` or `owner`'s already, and says where the publisher stands either way.
    async fn claim_publisher(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> StoreResult<PublisherClaim>;
    /// Moves the cursor forward to `cursor` (never back) and extends the lease to
    /// `lease_until`, if `owner` still holds the lease; false (nothing changed) when another
    /// instance took it over.
    async fn advance_publisher(
        &self,
        owner: &str,
        cursor: PublishCursor,
        lease_until: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Lets the lease go: `owner`'s (at shutdown, so another instance takes over at once), or
    /// whoever's (`None`: the only instance of a SQLite database, after a restart).
    async fn release_publisher(&self, owner: Option<&str>) -> StoreResult<()>;
    /// Where both feeds end now (see [`OutboxHorizon`]). A backend that must take something to
    /// tell when they are final (PostgreSQL: a transaction id) does so only when a head is past
    /// `beyond`, so that an idle publisher, or one waiting on earlier heads, takes nothing.
    async fn outbox_horizon(&self, beyond: (i64, i64)) -> StoreResult<OutboxHorizon>;
    /// Outbox events with `after < id <= until`, oldest first, at most `limit`.
    async fn outbox_between(
        &self,
        after: i64,
        until: i64,
        limit: i64,
    ) -> StoreResult<Vec<DownstreamAlertEvent>>;
    /// Company events with `after < position <= until`, oldest first, at most `limit`.
    async fn company_events_between(
        &self,
        after: i64,
        until: i64,
        limit: i64,
    ) -> StoreResult<Vec<DownstreamCompanyEvent>>;
    /// When the oldest event past the cursor, in either feed, was recorded; `None` when there is
    /// none.
    async fn oldest_unpublished(
        &self,
        cursor: PublishCursor,
    ) -> StoreResult<Option<OffsetDateTime>>;
}
