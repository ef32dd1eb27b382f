//! What a user does with their inbox: read a page of it, mark an alert read or dismiss it, and
//! watch it change. The user is the token's: `sub` in the company `concur.company`.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tokio::sync::broadcast::error::RecvError;

use super::{InboxFeed, feed::Listener};
use crate::{
    auth::{Principal, SCOPE_INBOX, TokenKind, normalize_user_id},
    clock::Clock,
    error::{Error, ErrorCode, Problem, Result},
    store::{
        DynStore, EVENT_ALERT_CREATED, EVENT_ALERT_READ, EVENT_ALERT_UPDATED, InboxFilter,
        InboxItem, InboxMark, InboxOwner, InboxQuery,
    },
};

/// Items per page unless asked otherwise, and at most.
pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

pub struct InboxService {
    store: DynStore,
    clock: Arc<Clock>,
    feed: Arc<InboxFeed>,
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

/// A change of a user's inbox, as the live stream tells it.
#[derive(Debug)]
pub enum InboxChange {
    /// `alert.created`, `alert.updated`, `alert.read`, `alert.expired`, `alert.dismissed` or
    /// `alert.withdrawn`; `item` is the alert as the inbox now shows it (none once it has left
    /// the inbox: after the last three, always).
    Alert {
        event_type: String,
        alert_id: String,
        item: Option<Box<InboxItem>>,
        unread_count: i64,
    },
    /// Changes were missed (the stream fell behind): reload the inbox.
    Resync,
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
            Some(_) => {
                problems.push(parameter("state", "state must be unread or all."));
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

    /// The changes of the owner's inbox from now on, until the server shuts down.
    pub fn watch(self: &Arc<Self>, owner: InboxOwner) -> InboxWatch {
        InboxWatch {
            service: self.clone(),
            owner,
            listener: self.feed.listen(),
        }
    }

    pub async fn unread_count(&self, owner: &InboxOwner) -> Result<i64> {
        Ok(self
            .store
            .inbox_unread_count(owner, self.clock.now())
            .await?)
    }
}

/// One user's view of the feed.
pub struct InboxWatch {
    service: Arc<InboxService>,
    owner: InboxOwner,
    listener: Listener,
}

impl InboxWatch {
    /// The next change of this inbox; `None` when the server shuts down.
    pub async fn next(&mut self) -> Option<InboxChange> {
        loop {
            let received = tokio::select! {
                _ = self.listener.closed.wait_for(|closed| *closed) => return None,
                received = self.listener.events.recv() => received,
            };
            let event = match received {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => return Some(InboxChange::Resync),
                Err(RecvError::Closed) => return None,
            };
            if event.company_id != self.owner.company_id || event.user_id != self.owner.user_id {
                continue;
            }
            return Some(self.describe(&event.event_type, &event.alert_id).await);
        }
    }

    async fn describe(&self, event_type: &str, alert_id: &str) -> InboxChange {
        let store = &self.service.store;
        let now = self.service.clock.now();
        let shows_item = matches!(
            event_type,
            EVENT_ALERT_CREATED | EVENT_ALERT_UPDATED | EVENT_ALERT_READ
        );
        let item = if shows_item {
            store.inbox_item(&self.owner, alert_id, now).await
        } else {
            Ok(None)
        };
        let unread_count = store.inbox_unread_count(&self.owner, now).await;
        match (item, unread_count) {
            (Ok(item), Ok(unread_count)) => InboxChange::Alert {
                event_type: event_type.to_owned(),
                alert_id: alert_id.to_owned(),
                item: item.map(Box::new),
                unread_count,
            },
            (Err(err), _) | (_, Err(err)) => {
                tracing::warn!(error = %err, "inbox stream: reading a changed alert failed");
                InboxChange::Resync
            }
        }
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
