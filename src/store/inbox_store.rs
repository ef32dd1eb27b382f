//! The inbox's storage beyond a page and a mark (SPEC §5, "what an inbox user and the host
//! product's front end can count on"): a user's events for resuming a stream, snooze and its
//! end, read-all, and the inbox page's sessions and single-use sign-in links. A trait of its
//! own, which [`super::Store`] extends, so that each backend implements it in files of its own.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{InboxOwner, InboxSession, OutboxEvent, SnoozeOutcome, StoreResult};

#[async_trait]
pub trait InboxStore: Send + Sync + 'static {
    /// The owner's outbox events with an id greater than `after`, oldest first (a resumed
    /// stream's replay; `outbox_by_user` serves it).
    async fn inbox_events_after(
        &self,
        owner: &InboxOwner,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<OutboxEvent>>;

    /// The ids of the outbox events after `after`, in order: how a feed with no stream to feed
    /// keeps its position exact without reading the events themselves.
    async fn outbox_ids_after(&self, after: i64, limit: i64) -> StoreResult<Vec<i64>>;

    /// Hides one of the owner's live alerts until `until` and makes it unread, so that it comes
    /// back unread, writing `alert.snoozed` in the same transaction when that changed anything.
    /// Refused (`PastExpiry`, nothing written) when the alert expires at or before `until`.
    async fn snooze_inbox(
        &self,
        owner: &InboxOwner,
        alert_id: &str,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<SnoozeOutcome>;

    /// Marks every unread alert of the owner's inbox (live, not snoozed at `now`) read at its
    /// current revision, each with its `alert.read`, in one transaction. Returns how many.
    async fn read_all_inbox(&self, owner: &InboxOwner, now: OffsetDateTime) -> StoreResult<u64>;

    /// Ends up to `limit` snoozes that ended at or before `now`, each live alert's with an
    /// `alert.unsnoozed` event in the same transaction (an alert dismissed, withdrawn or expired
    /// meanwhile only loses its mark). Returns how many snoozes ended.
    async fn wake_snoozed(&self, now: OffsetDateTime, limit: i64) -> StoreResult<u64>;

    /// Records a new session of the inbox page.
    async fn create_inbox_session(
        &self,
        session: &InboxSession,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    /// The session with this digest, unless it was ended or has expired at `now`.
    async fn inbox_session(
        &self,
        digest: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<InboxSession>>;
    /// Ends the session (sign-out): every instance refuses its cookie from then on. False when
    /// there was no such session still going.
    async fn end_inbox_session(&self, digest: &str, now: OffsetDateTime) -> StoreResult<bool>;
    /// Records that the sign-in link `jti` was used; false when it had been used before (a link
    /// works once). Kept until `expires_at`, after which the link is refused anyway.
    async fn use_sign_in_link(&self, jti: &str, expires_at: OffsetDateTime) -> StoreResult<bool>;
    /// Deletes sessions and used links that have expired at `now` (the sweeper). Returns how
    /// many rows went.
    async fn purge_inbox_sessions(&self, now: OffsetDateTime) -> StoreResult<u64>;

    /// A signal that the outbox may have new events, written by any instance, where the
    /// database can send one (PostgreSQL's `LISTEN`): what wakes the inbox feed at once instead
    /// of at its next poll. Listening has begun when this returns. `None` where the feed's own
    /// pokes are all there is (SQLite: one process writes the database).
    async fn outbox_signal(&self) -> Option<Box<dyn OutboxSignal>> {
        None
    }
}

/// Tells the inbox feed that the outbox may have changed (see [`InboxStore::outbox_signal`]).
#[async_trait]
pub trait OutboxSignal: Send {
    /// Returns once the outbox may hold events not read yet: one was announced, or the signal
    /// was lost for a while (announcements may have been missed meanwhile). Never fails: it
    /// keeps trying to listen again, and the feed's poll covers the time it cannot.
    async fn changed(&mut self);
}
