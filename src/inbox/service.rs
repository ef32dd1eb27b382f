//! What a user does with their inbox: read a page of it, mark an alert read or dismiss it, read
//! them all, snooze one, and watch it change (`watch.rs`). The user is the token's: `sub` in the company `concur.company`.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    InboxFeed,
    watch::{InboxWatch, Opening},
};
use crate::{
    auth::{Principal, SCOPE_INBOX, TokenKind, normalize_user_id},
    clock::Clock,
    error::{Error, ErrorCode, Problem, Result},
    store::{DynStore, InboxFilter, InboxItem, InboxMark, InboxOwner, InboxQuery, SnoozeOutcome},
};

/// Items per page unless asked otherwise, and at most.
pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

pub struct InboxService {
    pub(super) store: DynStore,
    pub(super) clock: Arc<Clock>,
    pub(super) feed: Arc<InboxFeed>,
}

/// A page of the inbox, newest first.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<InboxItem>,
    /// Where the next page starts (opaque); `None` on the last page.
    pub next_cursor: Option<String>,
    pub unread_count: i64,
}

/// The answer to read or dismiss.
#[derive(Debug, PartialEq, Eq)]
pub struct MarkReceipt {
    pub alert_id: String,
    /// False when the alert was already so.
    pub changed: bool,
    pub unread_count: i64,
}

/// The answer to a snooze.
#[derive(Debug, PartialEq, Eq)]
pub struct SnoozeReceipt {
    pub alert_id: String,
    /// False when the alert already was snoozed until then (and unread).
    pub changed: bool,
    pub snoozed_until: OffsetDateTime,
    pub unread_count: i64,
}

/// The answer to read-all.
#[derive(Debug, PartialEq, Eq)]
pub struct ReadAllReceipt {
    /// How many alerts were marked read.
    pub changed: u64,
    pub unread_count: i64,
}

impl InboxService {
    pub fn new(store: DynStore, clock: Arc<Clock>, feed: Arc<InboxFeed>) -> Self {
        InboxService { store, clock, feed }
    }

    /// The inbox a principal may read: a user token's, with the inbox scope.
    pub fn owner(principal: &Principal) -> Result<InboxOwner> {
        if principal.kind != TokenKind::User {
            return Err(Error::new(
                ErrorCode::UserTokenRequired,
                "The inbox is read with a user token (concur.type user).",
            ));
        }
        principal.require_scope(SCOPE_INBOX)?;
        let company_id = principal.company_id.clone().ok_or_else(|| {
            Error::unauthenticated("A user token must name its company (concur.company).")
        })?;
        Ok(InboxOwner {
            company_id,
            user_id: normalize_user_id(&principal.subject),
        })
    }

    /// `GET /maestro/v4/inbox?limit=&cursor=&state=unread|all`; every bad parameter is
    /// reported at once.
    pub async fn page(
        &self,
        owner: &InboxOwner,
        limit: Option<&str>,
        cursor: Option<&str>,
        state: Option<&str>,
    ) -> Result<Page> {
        let mut problems = Vec::new();
        let limit = match limit.map(str::parse::<i64>) {
            None => DEFAULT_PAGE,
            Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
            Some(_) => {
                problems.push(parameter(
                    "limit",
                    format!("limit must be a whole number from 1 to {MAX_PAGE}."),
                ));
                DEFAULT_PAGE
            }
        };
        let filter = match state {
            None | Some("all") => InboxFilter::All,
            Some("unread") => InboxFilter::Unread,
            Some("snoozed") => InboxFilter::Snoozed,
            Some(_) => {
                problems.push(parameter("state", "state must be unread, all or snoozed."));
                InboxFilter::All
            }
        };
        let before = match cursor.map(decode_cursor) {
            None => None,
            Some(Some(id)) => Some(id),
            Some(None) => {
                problems.push(parameter(
                    "cursor",
                    "cursor is not one this server handed out (use nextCursor as given).",
                ));
                None
            }
        };
        if !problems.is_empty() {
            return Err(Error::Rejected(problems));
        }
        let mut page = self
            .store
            .inbox_page(&InboxQuery {
                owner: owner.clone(),
                filter,
                before,
                limit: limit + 1,
                now: self.clock.now(),
            })
            .await?;
        let next_cursor = if page.items.len() as i64 > limit {
            page.items.truncate(limit as usize);
            page.items.last().map(|item| encode_cursor(&item.alert_id))
        } else {
            None
        };
        Ok(Page {
            items: page.items,
            next_cursor,
            unread_count: page.unread_count,
        })
    }

    /// `POST /maestro/v4/inbox/{alertId}/read` and `/dismiss`: idempotent; 404 unless the alert
    /// is the user's and has not expired.
    pub async fn mark(
        &self,
        owner: &InboxOwner,
        alert_id: &str,
        mark: InboxMark,
    ) -> Result<MarkReceipt> {
        let now = self.clock.now();
        let changed = self
            .store
            .mark_inbox(owner, alert_id, mark, now)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::AlertNotFound, "No such alert in your inbox."))?;
        if changed {
            self.feed.poke();
        }
        Ok(MarkReceipt {
            alert_id: alert_id.to_owned(),
            changed,
            unread_count: self.store.inbox_unread_count(owner, now).await?,
        })
    }

    /// The changes of the owner's inbox until the server shuts down: from now on, or after
    /// `last_event_id` (a position this stream or another instance's handed out), replaying
    /// what the client missed first. Also says how the stream opened, and the unread count
    /// then (read after listening, so a change in between is told, not lost).
    pub async fn watch(
        self: &Arc<Self>,
        owner: InboxOwner,
        last_event_id: Option<&str>,
    ) -> Result<(InboxWatch, Opening, i64)> {
        let resume_from = match last_event_id.map(str::trim) {
            None | Some("") => None,
            Some(id) => match id.parse::<i64>() {
                // A position above the outbox's head was not handed out by this database.
                Ok(position) if position >= 0 && position <= self.store.outbox_head().await? => {
                    Some(position)
                }
                _ => {
                    let watch = InboxWatch::start(self.clone(), owner.clone(), None);
                    let unread_count = self.unread_count(&owner).await?;
                    return Ok((watch, Opening::Resync, unread_count));
                }
            },
        };
        let opening = match resume_from {
            Some(_) => Opening::Resumed,
            None => Opening::Fresh,
        };
        // The feed takes in what committed before this stream, so that the stream starts from
        // there (a fresh client loads the inbox itself; a resuming one gets it replayed).
        if let Err(err) = self.feed.run_once().await {
            tracing::warn!(error = %err, "inbox stream: catching up with the outbox failed");
        }
        let watch = InboxWatch::start(self.clone(), owner.clone(), resume_from);
        let unread_count = self.unread_count(&owner).await?;
        Ok((watch, opening, unread_count))
    }

    /// Where a page rendered now stands in the feed: a stream resumed from it tells every
    /// change the page does not show (read before the page's query).
    pub fn position(&self) -> i64 {
        self.feed.position()
    }

    /// `POST /maestro/v4/inbox/{alertId}/snooze`: hides the alert until `until` (RFC 3339),
    /// which must lie ahead and before the alert expires; it comes back unread.
    pub async fn snooze(
        &self,
        owner: &InboxOwner,
        alert_id: &str,
        until: &str,
    ) -> Result<SnoozeReceipt> {
        let now = self.clock.now();
        let until = OffsetDateTime::parse(until, &Rfc3339).map_err(|_| {
            Error::Rejected(vec![Problem::at(
                ErrorCode::InvalidField,
                "/until",
                "until must be an RFC 3339 date-time, such as 2030-01-01T08:00:00Z.",
            )])
        })?;
        if until <= now {
            return Err(Error::Rejected(vec![Problem::at(
                ErrorCode::InvalidField,
                "/until",
                "until must lie ahead: a snooze ends in the future.",
            )]));
        }
        let changed = match self.store.snooze_inbox(owner, alert_id, until, now).await? {
            SnoozeOutcome::Snoozed { changed } => changed,
            SnoozeOutcome::NotFound => {
                return Err(Error::new(
                    ErrorCode::AlertNotFound,
                    "No such alert in your inbox.",
                ));
            }
            // Refused rather than shortened: a snooze up to the expiry would never bring the
            // alert back, which is a dismissal the user did not ask for.
            SnoozeOutcome::PastExpiry { expires_at } => {
                return Err(Error::Rejected(vec![
                    Problem::at(
                        ErrorCode::InvalidField,
                        "/until",
                        format!(
                            "until must come before the alert expires ({}); dismiss it instead.",
                            expires_at.format(&Rfc3339).unwrap_or_default()
                        ),
                    )
                    .with_detail("expiresAt", expires_at.format(&Rfc3339).unwrap_or_default()),
                ]));
            }
        };
        if changed {
            self.feed.poke();
        }
        Ok(SnoozeReceipt {
            alert_id: alert_id.to_owned(),
            changed,
            snoozed_until: until,
            unread_count: self.store.inbox_unread_count(owner, now).await?,
        })
    }

    /// `POST /maestro/v4/inbox/read-all`: every unread alert of the inbox read, at once.
    pub async fn read_all(&self, owner: &InboxOwner) -> Result<ReadAllReceipt> {
        let now = self.clock.now();
        let changed = self.store.read_all_inbox(owner, now).await?;
        if changed > 0 {
            self.feed.poke();
        }
        Ok(ReadAllReceipt {
            changed,
            unread_count: self.store.inbox_unread_count(owner, now).await?,
        })
    }

    pub async fn unread_count(&self, owner: &InboxOwner) -> Result<i64> {
        Ok(self
            .store
            .inbox_unread_count(owner, self.clock.now())
            .await?)
    }
}

fn parameter(name: &str, message: impl Into<String>) -> Problem {
    Problem::new(ErrorCode::InvalidField, message).with_detail("parameter", name)
}

/// Cursors are opaque to clients: the last alert id of a page, encoded.
fn encode_cursor(alert_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(alert_id)
}

/// The alert id a cursor carries; anything but a cursor this server could have made is refused
/// (whatever it decodes to, it never reaches a query).
fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes)
        .ok()
        .filter(|id| crate::alerts::is_alert_id(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let id = "alt_019a2b3c4d5e6f708192a3b4c5d6e7f8";
        assert_eq!(decode_cursor(&encode_cursor(id)).as_deref(), Some(id));
        assert_eq!(decode_cursor("not base64!"), None);
        assert_eq!(decode_cursor(""), None);
        // "AA" is base64 of one NUL byte; an id of another shape is not a cursor either.
        assert_eq!(decode_cursor("AA"), None);
        assert_eq!(decode_cursor(&encode_cursor("alt_0192")), None);
    }

    #[test]
    fn only_user_tokens_with_the_scope_open_an_inbox() {
        let user = Principal {
            kind: TokenKind::User,
            subject: "U-1".into(),
            app_id: None,
            company_id: Some("c1".into()),
            scopes: vec![SCOPE_INBOX.into()],
            roles: vec![],
            accepted_until: 0,
            issued_at: None,
            grant: None,
        };
        assert_eq!(
            InboxService::owner(&user).unwrap(),
            InboxOwner {
                company_id: "c1".into(),
                user_id: "u-1".into()
            }
        );
        let company = Principal {
            kind: TokenKind::Company,
            ..user.clone()
        };
        assert_eq!(
            InboxService::owner(&company).unwrap_err().code(),
            ErrorCode::UserTokenRequired
        );
        let unscoped = Principal {
            scopes: vec!["maestro.alerts.writeonly".into()],
            ..user
        };
        assert_eq!(
            InboxService::owner(&unscoped).unwrap_err().code(),
            ErrorCode::InsufficientScope
        );
    }
}
