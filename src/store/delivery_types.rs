//! The records of company notifications that cross the storage boundary: subscriptions,
//! company events, and the deliveries they owe with their claims and attempts. Plain data: no
//! behaviour, no SQL.

use time::OffsetDateTime;

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
    /// When it fell due (its event's arrival, or the retry's time): how long it waited for a
    /// worker is the claim's `now` less this.
    pub due_at: OffsetDateTime,
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
            .field("due_at", &self.due_at)
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
    /// When the next delivery not yet due at the claim's `now` falls due (see
    /// `Store::finish_and_claim`).
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
