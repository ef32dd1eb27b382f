//! The records of the user inbox (the display side): plain data crossing the storage boundary.

use time::OffsetDateTime;

/// Whose inbox: a user of a company. Alerts name their user; only that user sees them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InboxOwner {
    pub company_id: String,
    pub user_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboxFilter {
    Unread,
    All,
}

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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    /// Unread live alerts of the owner, across all pages.
    pub unread_count: i64,
}

/// What a user does to an alert of their inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboxMark {
    Read,
    Dismissed,
}
