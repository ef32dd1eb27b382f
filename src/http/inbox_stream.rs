//! The live stream of a user's inbox (SPEC §5): Server-Sent Events, each with an `id:` a client
//! resumes from (`Last-Event-ID`, which a browser's `EventSource` sends by itself when it
//! reconnects; or `lastEventId` in the query, for a client that opens a new connection).

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::{RawQuery, State},
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::{Stream, StreamExt, stream};
use utoipa::IntoParams;

use super::{error::ErrorBody, extract::InboxViewer, inbox::InboxItemBody};
use crate::{
    App,
    error::Error,
    inbox::{InboxChange, Opening, login},
};

/// How often a stream opened with the page's cookie checks that its session still goes on, so
/// that a sign-out (on any instance) ends it too.
const SESSION_CHECK: Duration = Duration::from_secs(15);

/// Where a client resumes (documentation: the handler reads the header and the query itself).
#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct StreamParams {
    /// The `id:` of the last event received, for a client that cannot send `Last-Event-ID`
    /// (a new `EventSource`); the header wins when both are sent.
    #[param(min_length = 1, max_length = 20, pattern = "^[0-9]+$")]
    last_event_id: Option<String>,
}

/// The changes of the user's inbox as Server-Sent Events, from any instance. The first event
/// is `ready` (`{unreadCount, resumed}`) — or `resync` (`{unreadCount}`) when the
/// `Last-Event-ID` given cannot be served: reload the inbox. With a `Last-Event-ID` that can,
/// every change after it follows (`resumed: true`: at least 24 h back), in order, then the live
/// ones. Each change is named by its type (`alert.created`, `alert.updated`, `alert.read`,
/// `alert.snoozed`, `alert.unsnoozed`, `alert.expired`, `alert.dismissed`, `alert.withdrawn`)
/// with data `{type, alertId, item, unreadCount}` (`item` as in the inbox, or null once the
/// alert has left it) and an `id:` to resume from. A resumed stream may repeat a change the
/// client already had: events carry the alert as it is now, so a repeat is harmless.
#[utoipa::path(
    operation_id = "streamInbox",
    get, path = "/maestro/v4/inbox/stream", tag = "inbox",
    params(
        StreamParams,
        ("Last-Event-ID" = Option<String>, Header, description = "The `id:` of the last event received; the stream replays what came after it"),
    ),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "lastEventId holds a character maestro does not accept (details.parameter names it)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
    ),
    security(("bearer" = ["maestro.inbox.readwrite"]))
)]
pub async fn stream(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    viewer: InboxViewer,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Error> {
    let from_query = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "lastEventId")
        .map(|(_, value)| value.into_owned());
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or(from_query);
    let (watch, opening, unread_count) = app
        .inbox
        .watch(viewer.owner.clone(), last_event_id.as_deref())
        .await?;
    let first = match opening {
        Opening::Resync => event(
            "resync",
            &serde_json::json!({ "unreadCount": unread_count }),
        ),
        Opening::Fresh | Opening::Resumed => event(
            "ready",
            &serde_json::json!({
                "unreadCount": unread_count,
                "resumed": opening == Opening::Resumed,
            }),
        ),
    }
    .id(watch.position().to_string());
    let changes = stream::unfold(watch, |mut watch| async move {
        let change = watch.next().await?;
        Some((Ok(sse_event(change)), watch))
    });
    // The stream is the credential's to use, so it ends when that would no longer be
    // accepted; the client reconnects with a fresh one (and resumes).
    let lapses =
        time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(viewer.accepted_until + 1);
    let lasts = lapses - time::OffsetDateTime::now_utc();
    let lapsed = tokio::time::sleep(lasts.try_into().unwrap_or_default());
    let ended = session_ended(app, viewer.session_cookie);
    let until = async move {
        tokio::select! {
            () = lapsed => {}
            () = ended => {}
        }
    };
    Ok(Sse::new(
        stream::once(async move { Ok(first) })
            .chain(changes)
            .take_until(until),
    )
    .keep_alive(KeepAlive::default()))
}

/// Completes once the page's session has been ended (signed out); never for a bearer token.
async fn session_ended(app: Arc<App>, cookie: Option<String>) {
    let Some(cookie) = cookie else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(SESSION_CHECK).await;
        // A failed check is not an ending: the next one decides.
        if let Ok(None) = login::session(&app.store, &cookie, app.clock.now()).await {
            return;
        }
    }
}

fn sse_event(change: InboxChange) -> Event {
    match change {
        InboxChange::Alert { change, position } => {
            // The user's other streams send the same text: it is made once.
            let data = change.rendered.get_or_init(|| {
                serde_json::json!({
                    "type": change.event_type,
                    "alertId": change.alert_id,
                    "item": change.item.clone().map(InboxItemBody::from),
                    "unreadCount": change.unread_count,
                })
                .to_string()
            });
            Event::default()
                .event(&change.event_type)
                .data(data)
                .id(position.to_string())
        }
        InboxChange::Resync { position } => {
            event("resync", &serde_json::json!({})).id(position.to_string())
        }
    }
}

fn event(name: &str, data: &serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}
