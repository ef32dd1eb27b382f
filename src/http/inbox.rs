//! The user inbox API (SPEC §5): a page of the user's alerts, read, dismiss, read-all and
//! snooze. The live stream of changes (Server-Sent Events) is in `inbox_stream.rs`.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, RawQuery, State},
};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use super::{
    error::ErrorBody,
    extract::{InboxUser, JsonBody},
};
use crate::{
    App,
    error::{Error, ErrorCode, Problem},
    inbox::{MarkReceipt, Page},
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
    /// The plain-text rendering, by the template.
    pub text: String,
    /// Who sent it.
    pub partner: PartnerBody,
    /// The alert's revision: each partner update adds one (the card may have changed).
    pub revision: i64,
    /// Until when the user snoozed it (RFC 3339), while that lies ahead; it is then listed by
    /// `state=snoozed` only.
    pub snoozed_until: Option<String>,
}

/// The partner an alert comes from.
#[derive(Serialize, ToSchema)]
pub struct PartnerBody {
    pub id: String,
    pub name: String,
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
            text: item.text,
            partner: PartnerBody {
                id: item.partner_id,
                name: item.partner_name,
            },
            revision: item.revision,
            snoozed_until: item
                .snoozed_until
                .map(|until| until.format(&Rfc3339).unwrap_or_default()),
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

/// Which alerts a page lists (documentation of `state`): the inbox (`all`, `unread`) or the
/// snoozed alerts, which the inbox hides until their snooze ends.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = InboxState, rename_all = "lowercase")]
pub enum InboxStateDoc {
    Unread,
    All,
    Snoozed,
}

/// The user's live alerts: not expired, not dismissed, not withdrawn; newest first. Snoozed
/// alerts are listed with `state=snoozed` only, until their snooze ends.
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
        (status = 400, description = "alertId holds a character maestro does not accept (details.parameter names it)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Not an unexpired alert of this user", body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
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
        (status = 400, description = "alertId holds a character maestro does not accept (details.parameter names it)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Not an unexpired alert of this user", body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
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

/// What read-all answers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadAllBody {
    /// How many alerts were marked read (each with `alert.read` on the stream).
    pub changed: u64,
    /// Unread alerts left (0 unless one arrived meanwhile).
    pub unread_count: i64,
}

/// Marks every unread alert of the inbox read (snoozed ones excepted: they come back unread).
/// The user's other streams hear of each (`alert.read`).
#[utoipa::path(
    operation_id = "markAllInboxAlertsRead",
    post, path = "/maestro/v4/inbox/read-all", tag = "inbox",
    responses(
        (status = 200, description = "Marked read", body = ReadAllBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
    ),
    security(("bearer" = ["maestro.inbox.readwrite"]))
)]
pub async fn read_all(
    State(app): State<Arc<App>>,
    InboxUser(owner): InboxUser,
) -> Result<Json<ReadAllBody>, Error> {
    let receipt = app.inbox.read_all(&owner).await?;
    Ok(Json(ReadAllBody {
        changed: receipt.changed,
        unread_count: receipt.unread_count,
    }))
}

/// The body of a snooze.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SnoozeRequestDoc {
    /// RFC 3339; ahead, and before the alert's `expiresAt`.
    #[schema(format = DateTime)]
    until: String,
}

/// What a snooze answers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnoozeBody {
    pub alert_id: String,
    /// False when it already was snoozed until then (and unread).
    pub changed: bool,
    /// RFC 3339.
    pub snoozed_until: String,
    pub unread_count: i64,
}

/// Hides the alert from the inbox until `until`, when it comes back unread (`alert.unsnoozed`
/// on the stream, within `MAESTRO_SWEEP_INTERVAL` of that instant; the inbox and its count show
/// it again from the instant itself). Snoozing again moves the end.
#[utoipa::path(
    operation_id = "snoozeInboxAlert",
    post, path = "/maestro/v4/inbox/{alertId}/snooze", tag = "inbox",
    params(("alertId" = String, Path)),
    request_body(content = SnoozeRequestDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "Snoozed", body = SnoozeBody),
        (status = 400, description = "until is not an RFC 3339 date-time, is not ahead, or is not before the alert expires (details.field is /until)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Not a live alert of this user", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
    ),
    security(("bearer" = ["maestro.inbox.readwrite"]))
)]
pub async fn snooze(
    State(app): State<Arc<App>>,
    Path(alert_id): Path<String>,
    InboxUser(owner): InboxUser,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Json<SnoozeBody>, Error> {
    let Some(until) = body.get("until").and_then(|until| until.as_str()) else {
        return Err(Error::Rejected(vec![Problem::at(
            ErrorCode::InvalidField,
            "/until",
            "until is required: an RFC 3339 date-time.",
        )]));
    };
    let receipt = app.inbox.snooze(&owner, &alert_id, until).await?;
    Ok(Json(SnoozeBody {
        alert_id: receipt.alert_id,
        changed: receipt.changed,
        snoozed_until: receipt.snoozed_until.format(&Rfc3339).unwrap_or_default(),
        unread_count: receipt.unread_count,
    }))
}
