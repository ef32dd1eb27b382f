//! The user inbox API (SPEC §5): a page of the user's alerts, read and dismiss, and the live
//! stream of changes (Server-Sent Events).

use std::{convert::Infallible, sync::Arc};

use axum::{
    Json,
    extract::{Path, RawQuery, State},
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::{Stream, StreamExt, stream};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use super::{
    error::ErrorBody,
    extract::{InboxUser, InboxViewer},
};
use crate::{
    App,
    error::Error,
    inbox::{InboxChange, MarkReceipt, Page},
    store::{InboxItem, InboxMark},
};

/// One alert of the inbox.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxItemBody {
    pub alert_id: String,
    pub template_id: String,
    /// Plain text, rendered by the template.
    pub title: String,
    pub msg_type: String,
    pub topic: Option<String>,
    /// As the partner sent it (RFC 3339).
    pub created_at: String,
    /// RFC 3339; the alert leaves the inbox at this instant.
    pub expires_at: String,
    /// Read at its current revision; a partner's update makes it unread again.
    pub read: bool,
    /// The card, rendered by the template: escaped, links `http(s)` only.
    pub html: String,
}

impl From<InboxItem> for InboxItemBody {
    fn from(item: InboxItem) -> Self {
        InboxItemBody {
            alert_id: item.alert_id,
            template_id: item.template_id,
            title: item.title,
            msg_type: item.msg_type,
            topic: item.topic,
            created_at: item.created_at,
            expires_at: item.expires_at.format(&Rfc3339).unwrap_or_default(),
            read: item.read,
            html: item.html,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxPageBody {
    /// Newest first.
    pub items: Vec<InboxItemBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// Unread alerts in the whole inbox.
    pub unread_count: i64,
}

impl From<Page> for InboxPageBody {
    fn from(page: Page) -> Self {
        InboxPageBody {
            items: page.items.into_iter().map(InboxItemBody::from).collect(),
            next_cursor: page.next_cursor,
            unread_count: page.unread_count,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxMarkBody {
    pub alert_id: String,
    /// False when the alert already was read (or dismissed).
    pub changed: bool,
    pub unread_count: i64,
}

impl From<MarkReceipt> for InboxMarkBody {
    fn from(receipt: MarkReceipt) -> Self {
        InboxMarkBody {
            alert_id: receipt.alert_id,
            changed: receipt.changed,
            unread_count: receipt.unread_count,
        }
    }
}

/// The query of `GET /maestro/v4/inbox` (documentation: the handler reads it itself, to report
/// bad values in the Maestro error format).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct InboxParams {
    /// How many alerts (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `nextCursor` of the previous page, as given.
    #[param(min_length = 1)]
    cursor: Option<String>,
    /// `all` by default.
    #[param(value_type = Option<InboxStateDoc>, inline)]
    state: Option<String>,
}

/// Which alerts a page lists (documentation of `state`).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = InboxState, rename_all = "lowercase")]
pub enum InboxStateDoc {
    Unread,
    All,
}

/// The user's live alerts: not expired, not dismissed; newest first.
#[utoipa::path(
    operation_id = "listInbox",
    get, path = "/maestro/v4/inbox", tag = "inbox",
    params(InboxParams),
    responses(
        (status = 200, body = InboxPageBody),
        (status = 400, description = "A bad limit, cursor or state (details.parameter names it)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a user token, or without maestro.inbox.readwrite", body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
    ),
    security(("bearer" = ["maestro.inbox.readwrite"]))
)]
pub async fn list(
    State(app): State<Arc<App>>,
    InboxUser(owner): InboxUser,
    RawQuery(query): RawQuery,
) -> Result<Json<InboxPageBody>, Error> {
    let (mut limit, mut cursor, mut state) = (None, None, None);
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "limit" => limit = Some(value.into_owned()),
            "cursor" => cursor = Some(value.into_owned()),
            "state" => state = Some(value.into_owned()),
            _ => {}
        }
    }
    let page = app
        .inbox
        .page(
            &owner,
            limit.as_deref(),
            cursor.as_deref(),
            state.as_deref(),
        )
        .await?;
    Ok(Json(page.into()))
}

/// Marks the alert read at its current revision (idempotent).
#[utoipa::path(
    operation_id = "markInboxAlertRead",
    post, path = "/maestro/v4/inbox/{alertId}/read", tag = "inbox",
    params(("alertId" = String, Path)),
    responses(
        (status = 200, body = InboxMarkBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Not an unexpired alert of this user", body = ErrorBody),
    ),
    security(("bearer" = ["maestro.inbox.readwrite"]))
)]
pub async fn read(
    State(app): State<Arc<App>>,
    Path(alert_id): Path<String>,
    InboxUser(owner): InboxUser,
) -> Result<Json<InboxMarkBody>, Error> {
    let receipt = app.inbox.mark(&owner, &alert_id, InboxMark::Read).await?;
    Ok(Json(receipt.into()))
}

/// Removes the alert from the inbox for good (idempotent; a later update does not bring it back).
#[utoipa::path(
    operation_id = "dismissInboxAlert",
    post, path = "/maestro/v4/inbox/{alertId}/dismiss", tag = "inbox",
    params(("alertId" = String, Path)),
    responses(
        (status = 200, body = InboxMarkBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Not an unexpired alert of this user", body = ErrorBody),
    ),
    security(("bearer" = ["maestro.inbox.readwrite"]))
)]
pub async fn dismiss(
    State(app): State<Arc<App>>,
    Path(alert_id): Path<String>,
    InboxUser(owner): InboxUser,
) -> Result<Json<InboxMarkBody>, Error> {
    let receipt = app
        .inbox
        .mark(&owner, &alert_id, InboxMark::Dismissed)
        .await?;
    Ok(Json(receipt.into()))
}

/// The changes of the user's inbox as Server-Sent Events, from any instance: first `ready`
/// (`{unreadCount}`), then one event per change, named by its type (`alert.created`,
/// `alert.updated`, `alert.read`, `alert.expired`, `alert.dismissed`, `alert.withdrawn`) with
/// data `{type, alertId, item, unreadCount}` (`item` as in the inbox, or null once the alert has
/// left it), and `resync` when changes were missed. Reload the inbox on (re)connecting.
#[utoipa::path(
    operation_id = "streamInbox",
    get, path = "/maestro/v4/inbox/stream", tag = "inbox",
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = ["maestro.inbox.readwrite"]))
)]
pub async fn stream(
    State(app): State<Arc<App>>,
    InboxViewer {
        owner,
        accepted_until,
    }: InboxViewer,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Error> {
    // Listen first, count second: a change in between is then told, not lost.
    let watch = app.inbox.watch(owner.clone());
    let unread_count = app.inbox.unread_count(&owner).await?;
    let ready = event("ready", &serde_json::json!({ "unreadCount": unread_count }));
    let changes = stream::unfold(watch, |mut watch| async move {
        let change = watch.next().await?;
        Some((Ok(sse_event(change)), watch))
    });
    // The stream is the token's to use, so it ends when the token would no longer be
    // accepted; the client reconnects with a fresh one.
    let lapses = time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(accepted_until + 1);
    let lasts = lapses - time::OffsetDateTime::now_utc();
    let token_lapsed = tokio::time::sleep(lasts.try_into().unwrap_or_default());
    Ok(Sse::new(
        stream::once(async move { Ok(ready) })
            .chain(changes)
            .take_until(token_lapsed),
    )
    .keep_alive(KeepAlive::default()))
}

fn sse_event(change: InboxChange) -> Event {
    match change {
        InboxChange::Alert {
            event_type,
            alert_id,
            item,
            unread_count,
        } => event(
            &event_type,
            &serde_json::json!({
                "type": event_type,
                "alertId": alert_id,
                "item": item.map(|item| InboxItemBody::from(*item)),
                "unreadCount": unread_count,
            }),
        ),
        InboxChange::Resync => event("resync", &serde_json::json!({})),
    }
}

fn event(name: &str, data: &serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}
