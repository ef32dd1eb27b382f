//! The records that cross the storage boundary. Plain data: no behaviour, no SQL.

use std::{collections::BTreeMap, ops::Range, sync::Arc};

use time::OffsetDateTime;

#[derive(Clone, PartialEq)]
pub struct PartnerRecord {
    pub id: String,
    pub name: String,
    pub allowed_url_domains: Vec<String>,
    pub postback_url: Option<String>,
    /// Stored encrypted; in the clear here.
    pub postback_secret: String,
    /// The secret before the latest rotation, which deliveries also sign with until
    /// `previous_secret_until`.
    pub previous_postback_secret: Option<String>,
    pub previous_secret_until: Option<OffsetDateTime>,
    pub rate_limit: Option<RateLimit>,
}

/// Never the secrets.
impl std::fmt::Debug for PartnerRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartnerRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("allowed_url_domains", &self.allowed_url_domains)
            .field("postback_url", &self.postback_url)
            .field("previous_secret_until", &self.previous_secret_until)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    /// From its two stored columns: a limit exists when both do.
    pub fn from_columns(per_second: Option<i64>, burst: Option<i64>) -> Option<RateLimit> {
        let clamp = |n: i64| n.clamp(1, i64::from(u32::MAX)) as u32;
        per_second.zip(burst).map(|(per_second, burst)| RateLimit {
            per_second: clamp(per_second),
            burst: clamp(burst),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TemplateRecord {
    pub partner_id: String,
    pub template_id: String,
    pub version: i64,
    pub schema_json: String,
    /// Render sources by file name.
    pub sources: BTreeMap<String, String>,
    pub content_hash: String,
    /// When this version was imported: a template's `updatedAt` for the partners.
    pub created_at: OffsetDateTime,
}

/// A template as found in a partner directory, before the store versions it.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateSource {
    pub template_id: String,
    pub schema_json: String,
    pub sources: BTreeMap<String, String>,
    pub content_hash: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PartnerImport {
    pub id: String,
    pub name: String,
    pub allowed_url_domains: Vec<String>,
    pub postback_url: Option<String>,
    /// `None` keeps the stored secret, or stores `generated_secret` for a new partner.
    pub postback_secret: Option<String>,
    pub generated_secret: String,
    pub rate_limit: Option<RateLimit>,
    /// What the partner's OAuth2 client may be granted.
    pub scopes: Vec<String>,
    /// Where a company connection sends the administrator (the first one).
    pub redirect_uris: Vec<String>,
    pub templates: Vec<TemplateSource>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportReport {
    pub partner_id: String,
    pub created: bool,
    /// (template id, version now current, whether this import created that version).
    pub templates: Vec<(String, i64, bool)>,
}

/// Who an alert belongs to: it is invisible to everyone else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertOwner {
    pub partner_id: String,
    pub company_id: String,
}

/// The content of one revision of an alert, as validated by the domain.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertContent {
    pub ext_ref: String,
    pub user_id: String,
    pub template_id: String,
    pub template_version: i64,
    pub msg_type: String,
    pub topic: Option<String>,
    pub title: Option<String>,
    pub created_at: String,
    pub expires_at: OffsetDateTime,
    /// SHA-256 of `payload`, to tell a safe retry from a conflicting reuse of an extRef.
    pub body_hash: String,
    /// Canonical JSON of the request body.
    pub payload: String,
    /// What the template (version `template_version`) made of it; shared by the alerts of a
    /// fan-out that rendered the same.
    pub rendering: Arc<Rendering>,
    /// Where `payload` holds its `metadata` value, for a store that keeps the metadata of a
    /// fan-out once; `None` when not known (records read back from a store leave it out).
    pub payload_metadata: Option<PayloadMetadata>,
}

/// The `metadata` value inside a canonical payload: its byte range and the SHA-256 of those
/// bytes (made once per checked metadata, not per alert).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadMetadata {
    pub range: Range<usize>,
    pub digest: [u8; 32],
}

/// An alert as its template rendered it; stored with each revision. `title` and `text` are
/// plain text, `html` is the checked, escaped card.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendering {
    pub title: String,
    pub html: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewAlert {
    pub id: String,
    pub owner: AlertOwner,
    pub content: AlertContent,
    pub received_at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// An alert with this extRef exists; `same_body` tells a retry from a conflict.
    Existing {
        alert_id: String,
        same_body: bool,
    },
    /// The extRef is taken by an alert the partner has withdrawn: nothing was written.
    Withdrawn {
        alert_id: String,
        same_body: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertSelector {
    Id(String),
    ExtRef(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertTarget {
    pub owner: AlertOwner,
    pub selector: AlertSelector,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AlertChange {
    pub content: AlertContent,
    pub changed_at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    Updated {
        alert_id: String,
        revision: i64,
    },
    /// The body equals the current revision: nothing was written (PUT is idempotent).
    Unchanged {
        alert_id: String,
        revision: i64,
    },
    NotFound,
    /// Selected by id, but the body names another extRef, which is immutable.
    ExtRefMismatch {
        alert_id: String,
    },
    /// The alert was withdrawn; it takes no more revisions.
    Withdrawn {
        alert_id: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct AlertRecord {
    pub id: String,
    pub owner: AlertOwner,
    pub content: AlertContent,
    pub revision: i64,
    pub received_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub withdrawn_at: Option<OffsetDateTime>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RevisionRecord {
    pub revision: i64,
    pub template_version: i64,
    pub body_hash: String,
    pub payload: String,
    pub rendering: Rendering,
    pub recorded_at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEvent {
    pub id: i64,
    pub event_type: String,
    pub alert_id: String,
    pub revision: i64,
    pub partner_id: String,
    pub company_id: String,
    pub user_id: String,
    pub occurred_at: OffsetDateTime,
}

/// A partner application's subscription to one kind of a company's events (legacy v1.0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub partner_id: String,
    pub company_id: String,
    /// `itinerary`, `profile` or `fop`.
    pub object_type: String,
}

/// A company event as received, before the store records it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCompanyEvent {
    pub id: String,
    pub object_type: String,
    pub event_type: String,
    pub company_id: String,
    pub user_login: Option<String>,
    pub trip_id: Option<String>,
    pub occurred_at: OffsetDateTime,
    /// JSON snapshot of the trip or profile.
    pub object: Option<String>,
    pub received_at: OffsetDateTime,
}

/// A delivery owed to a partner for an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Also the Standard Webhooks `webhook-id`.
    pub id: String,
    pub event_id: String,
    pub partner_id: String,
    pub status: String,
    pub attempts: i64,
}

/// The fields of a company event a notification is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompanyEventRecord {
    pub id: String,
    pub object_type: String,
    pub event_type: String,
    pub company_id: String,
    pub user_login: Option<String>,
    pub trip_id: Option<String>,
    pub occurred_at: OffsetDateTime,
}

/// A delivery a worker has claimed, with what it needs to send it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub id: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// Attempts made before the latest replay: the retry schedule starts again after a replay.
    pub replayed_after: i64,
    pub partner_id: String,
    pub postback_url: Option<String>,
    pub postback_secret: String,
    /// The secret before the latest rotation, while its grace period lasts at the claim's
    /// `now`: the delivery is signed with both.
    pub previous_postback_secret: Option<String>,
    pub event: CompanyEventRecord,
}

/// Never the secrets.
impl std::fmt::Debug for ClaimedDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("id", &self.id)
            .field("attempts", &self.attempts)
            .field("replayed_after", &self.replayed_after)
            .field("partner_id", &self.partner_id)
            .field("postback_url", &self.postback_url)
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

/// A partner's deliveries still to make (pending, claimed or not), for the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryBacklog {
    pub partner_id: String,
    pub pending: i64,
    /// When the longest-waiting of them fell (or falls) due; `None` without any.
    pub oldest_next_attempt: Option<OffsetDateTime>,
}

/// One attempt to deliver, as the worker saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// 1 for the first attempt.
    pub attempt: i64,
    pub started_at: OffsetDateTime,
    pub duration_ms: i64,
    /// The partner's HTTP status, when an answer came.
    pub status_code: Option<i64>,
    /// Why it did not succeed (timeout, connection refused, refused address…).
    pub error: Option<String>,
    /// The start of the partner's answer.
    pub response_body: Option<String>,
    /// `delivered`, `retry`, `failed` or `gone`.
    pub outcome: String,
}

/// An attempt that ended, to record with others of its claimant (see
/// `Store::finish_attempts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedAttempt {
    pub delivery_id: String,
    pub attempt: AttemptRecord,
    pub next: DeliveryNext,
}

/// What a delivery worker claims: deliveries due at `now`, leased until `lease_until`, at most
/// `limit` of them and no partner beyond `per_partner_limit` live leases (see
/// `Store::claim_deliveries`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    pub now: OffsetDateTime,
    pub lease_until: OffsetDateTime,
    pub limit: i64,
    pub per_partner_limit: i64,
}

/// One step of a delivery worker (`Store::finish_and_claim`).
#[derive(Clone, Debug, Default)]
pub struct WorkerStep {
    /// Per finished attempt, in order: whether its claim was still held.
    pub kept: Vec<bool>,
    pub claimed: Vec<ClaimedDelivery>,
    /// As `Store::next_delivery_due` at the claim's `now`.
    pub next_due: Option<OffsetDateTime>,
}

/// What becomes of a delivery after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryNext {
    Delivered,
    RetryAt(OffsetDateTime),
    /// Failed for good.
    Failed,
    /// Failed for good, and the partner's subscription to this kind of event ends (HTTP 410).
    Gone,
}

pub const DELIVERY_PENDING: &str = "pending";
pub const DELIVERY_DELIVERED: &str = "delivered";
pub const DELIVERY_FAILED: &str = "failed";

/// A delivery as the admin lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliverySummary {
    pub id: String,
    pub event_id: String,
    pub partner_id: String,
    pub company_id: String,
    pub object_type: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Which deliveries the admin asks for: newest first, optionally of one status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub status: Option<String>,
    pub partner_id: Option<String>,
    pub limit: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// Pending again, due now, with its `webhook-id` unchanged.
    Replayed,
    NotFound,
    /// Only a delivery that has ended (failed or delivered) is replayed.
    StillPending,
}

/// Which stored snapshot an ObjectURI names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotKey {
    Trip(String),
    Profile { user_login: String },
}

pub const EVENT_ALERT_CREATED: &str = "alert.created";
pub const EVENT_ALERT_UPDATED: &str = "alert.updated";
pub const EVENT_ALERT_EXPIRED: &str = "alert.expired";
pub const EVENT_ALERT_READ: &str = "alert.read";
pub const EVENT_ALERT_DISMISSED: &str = "alert.dismissed";
pub const EVENT_ALERT_WITHDRAWN: &str = "alert.withdrawn";
