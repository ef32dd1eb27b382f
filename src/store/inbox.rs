//! The records of the user inbox (the display side): plain data crossing the storage boundary.

use time::OffsetDateTime;

/// Whose inbox: a user of a company. Alerts name their user; only that user sees them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InboxOwner {
    pub company_id: String,
    pub user_id: String,
}

/// Which of the owner's live alerts a page lists: the inbox (all or unread; snoozed alerts are
/// hidden from it until their snooze ends), or the snoozed ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboxFilter {
    Unread,
    All,
    Snoozed,
}

/// The alert left the inbox until a time the user chose (`alerts.snoozed_until`).
pub const EVENT_ALERT_SNOOZED: &str = "alert.snoozed";
/// A snooze ended: the alert is back in the inbox, unread. Written by the sweeper's pass after
/// the snooze's end (the reads show the alert again from the very instant).
pub const EVENT_ALERT_UNSNOOZED: &str = "alert.unsnoozed";

/// A page of an inbox: the owner's live alerts (not expired at `now`, not dismissed, not
/// withdrawn), newest first, older than the alert `before` when given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxQuery {
    pub owner: InboxOwner,
    pub filter: InboxFilter,
    pub before: Option<String>,
    pub limit: i64,
    pub now: OffsetDateTime,
}

/// One alert as its user sees it: the current revision's rendering and the user's marks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxItem {
    pub alert_id: String,
    pub template_id: String,
    pub template_version: i64,
    pub revision: i64,
    pub msg_type: String,
    pub topic: Option<String>,
    /// As the partner sent it (RFC 3339).
    pub created_at: String,
    pub expires_at: OffsetDateTime,
    /// Read at its current revision: an update makes an alert unread again.
    pub read: bool,
    pub title: String,
    pub html: String,
    pub text: String,
    pub partner_id: String,
    pub partner_name: String,
    /// Until when the user snoozed it, while that is still ahead (the alert is then out of the
    /// inbox and listed by `state=snoozed`).
    pub snoozed_until: Option<OffsetDateTime>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    /// Unread live alerts of the owner, across all pages.
    pub unread_count: i64,
}

/// The answer to a snooze.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnoozeOutcome {
    /// Snoozed until the time asked (`changed` is false when it already was, until then).
    Snoozed { changed: bool },
    /// The alert expires at or before the time asked: a snooze would never end.
    PastExpiry { expires_at: OffsetDateTime },
    /// Not a live alert of this owner.
    NotFound,
}

/// A signed-in session of the inbox page, as stored: the cookie carries a random secret, the
/// database its SHA-256 digest only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxSession {
    pub digest: String,
    pub owner: InboxOwner,
    pub expires_at: OffsetDateTime,
}

/// What a user does to an alert of their inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboxMark {
    Read,
    Dismissed,
}
