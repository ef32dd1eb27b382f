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

pub const EVENT_ALERT_CREATED: &str = "alert.created";
pub const EVENT_ALERT_UPDATED: &str = "alert.updated";
pub const EVENT_ALERT_EXPIRED: &str = "alert.expired";
pub const EVENT_ALERT_READ: &str = "alert.read";
pub const EVENT_ALERT_DISMISSED: &str = "alert.dismissed";
pub const EVENT_ALERT_WITHDRAWN: &str = "alert.withdrawn";
