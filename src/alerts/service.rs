//! Creating and updating alerts: authorisation, validation against the partner's template,
//! rendering through it, and the extRef identity rules of SPEC §4.
//!
//! Rendering happens here, on the request's task, before the store is called: the writer only
//! stores the result, so its hot path stays the same size whatever the template does.

use std::sync::Arc;

use serde_json::Value;

use super::{AlertBody, AlertRequest, canonical::Canonical, metadata};
use crate::{
    auth::{Principal, SCOPE_ALERTS_WRITE, normalize_company_id, normalize_user_id},
    clock::Clock,
    digest::sha256_hex,
    error::{Error, ErrorCode, Problem, Result},
    inbox::InboxFeed,
    partners::{AlertFields, CachedPartner, Catalog, CompiledTemplate},
    store::{
        AlertChange, AlertContent, AlertOwner, AlertSelector, AlertTarget, CreateOutcome, DynStore,
        NewAlert, PayloadMetadata, Rendering, UpdateOutcome,
    },
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptStatus {
    Received,
    Updated,
    Withdrawn,
}

/// What the partner is told after its alert was committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub alert_id: String,
    pub status: ReceiptStatus,
    pub message: &'static str,
}

pub struct AlertService {
    pub(super) store: DynStore,
    catalog: Arc<Catalog>,
    pub(super) clock: Arc<Clock>,
    /// Told of every committed change, so that connected inboxes hear of it at once.
    pub(super) feed: Arc<InboxFeed>,
}

/// A caller acting for a registered partner: the token has the alerts scope and names the
/// partner. Decided from the token alone, so the HTTP surface does it before reading a body.
pub struct PartnerCaller {
    pub(super) principal: Principal,
    pub(super) partner: Arc<CachedPartner>,
}

impl PartnerCaller {
    /// Clears the caller to submit, within its partner's rate limit (one request of its budget
    /// is taken here).
    pub fn admit(self) -> Result<Submitter> {
        self.partner.admit()?;
        Ok(Submitter { caller: self })
    }
}

/// A partner caller cleared to submit (or withdraw, or preview) alerts: within its partner's
/// rate limit, one request of which it has taken.
pub struct Submitter {
    pub(super) caller: PartnerCaller,
}

/// A submission that passed every check, ready to be stored.
pub(super) struct Accepted {
    pub(super) owner: AlertOwner,
    pub(super) content: AlertContent,
}

impl AlertService {
    pub fn new(
        store: DynStore,
        catalog: Arc<Catalog>,
        clock: Arc<Clock>,
        feed: Arc<InboxFeed>,
    ) -> Self {
        AlertService {
            store,
            catalog,
            clock,
            feed,
        }
    }

    /// Who may submit: the scope, a registered partner ([`AlertService::identify`]), then the
    /// partner's rate limit ([`PartnerCaller::admit`]).
    pub async fn authorize(&self, principal: Principal) -> Result<Submitter> {
        self.identify(principal).await?.admit()
    }

    /// Who may read the partner's side (its templates): the scope and a registered partner,
    /// without taking from the rate limit, which guards the work of alerts.
    pub async fn identify(&self, principal: Principal) -> Result<PartnerCaller> {
        principal.require_scope(SCOPE_ALERTS_WRITE)?;
        let partner_id = principal.app_id.as_deref().ok_or_else(|| {
            Error::new(
                ErrorCode::UnknownPartner,
                "The token names no partner application (concur.appId).",
            )
        })?;
        let partner = self.catalog.partner(partner_id).await?.ok_or_else(|| {
            Error::new(
                ErrorCode::UnknownPartner,
                "The token's partner application is not registered with this service.",
            )
        })?;
        Ok(PartnerCaller { principal, partner })
    }

    /// `POST /maestro/v4/alerts`.
    pub async fn create(&self, submitter: &Submitter, body: &AlertBody) -> Result<Receipt> {
        let accepted = self.accept(submitter, body)?;
        let alert = NewAlert {
            id: new_alert_id(),
            owner: accepted.owner,
            content: accepted.content,
            received_at: self.clock.now(),
        };
        match self.store.create_alert(&alert).await? {
            CreateOutcome::Created => {
                self.feed.poke();
                Ok(Receipt {
                    alert_id: alert.id,
                    status: ReceiptStatus::Received,
                    message: "Alert created successfully",
                })
            }
            CreateOutcome::Existing {
                alert_id,
                same_body: true,
            } => Ok(Receipt {
                alert_id,
                status: ReceiptStatus::Received,
                message: "Alert already received (identical retry)",
            }),
            CreateOutcome::Existing {
                alert_id,
                same_body: false,
            } => Err(Error::Rejected(vec![
                Problem::at(
                    ErrorCode::AlertExists,
                    "/extRef",
                    "An alert with this extRef exists with different content; update it with PUT.",
                )
                .with_detail("alertId", alert_id),
            ])),
            // A withdrawn alert keeps its extRef: a retry of its POST is answered as before,
            // but with the alert's state, and changes nothing.
            CreateOutcome::Withdrawn {
                alert_id,
                same_body: true,
            } => Ok(Receipt {
                alert_id,
                status: ReceiptStatus::Withdrawn,
                message: "Alert already received and since withdrawn (identical retry)",
            }),
            CreateOutcome::Withdrawn {
                alert_id,
                same_body: false,
            } => Err(Error::Rejected(vec![
                Problem::at(
                    ErrorCode::AlertExists,
                    "/extRef",
                    "An alert with this extRef exists and was withdrawn; a withdrawn alert's \
                     extRef is not used again.",
                )
                .with_detail("alertId", alert_id),
            ])),
        }
    }

    /// `PUT /maestro/v4/alerts` (by the body's extRef) and `PUT /maestro/v4/alerts/{alertId}`.
    pub async fn update(
        &self,
        submitter: &Submitter,
        alert_id: Option<&str>,
        body: &AlertBody,
    ) -> Result<Receipt> {
        let accepted = self.accept(submitter, body)?;
        let selector = match alert_id {
            Some(id) => AlertSelector::Id(id.to_owned()),
            None => AlertSelector::ExtRef(accepted.content.ext_ref.clone()),
        };
        let target = AlertTarget {
            owner: accepted.owner,
            selector,
        };
        let change = AlertChange {
            content: accepted.content,
            changed_at: self.clock.now(),
        };
        let outcome = self.store.update_alert(&target, &change).await?;
        if matches!(outcome, UpdateOutcome::Updated { .. }) {
            self.feed.poke();
        }
        match outcome {
            UpdateOutcome::Updated { alert_id, .. } | UpdateOutcome::Unchanged { alert_id, .. } => {
                Ok(Receipt {
                    alert_id,
                    status: ReceiptStatus::Updated,
                    message: "Alert updated successfully",
                })
            }
            UpdateOutcome::NotFound => Err(Error::new(
                ErrorCode::AlertNotFound,
                "No such alert for this partner and company.",
            )),
            UpdateOutcome::ExtRefMismatch { .. } => Err(Error::at(
                ErrorCode::ExtRefImmutable,
                "/extRef",
                "extRef cannot be changed; it differs from the alert's stored extRef.",
            )),
            UpdateOutcome::Withdrawn { alert_id } => Err(Error::Rejected(vec![
                Problem::new(
                    ErrorCode::AlertWithdrawn,
                    "The alert was withdrawn; it cannot be updated.",
                )
                .with_detail("alertId", alert_id),
            ])),
        }
    }

    /// Every check a create, an update and a preview share, in the order that protects the
    /// server first: scope, partner, rate limit, then the body (all of its problems at once).
    pub(super) fn accept(&self, submitter: &Submitter, body: &AlertBody) -> Result<Accepted> {
        let PartnerCaller { principal, partner } = &submitter.caller;
        let partner_id = partner.partner.id.as_str();
        let parsed = AlertRequest::parse(body, self.clock.now());
        // Authorisation problems outrank validation problems: a caller acting for the wrong
        // company or application learns nothing else about its request.
        if let Some(app) = body.text("applicationId")
            && app != partner_id
        {
            return Err(Error::at(
                ErrorCode::ApplicationMismatch,
                "/applicationId",
                "applicationId differs from the token's partner application.",
            ));
        }
        let body_company = body.text("companyId").map(normalize_company_id);
        let company_id = match (&principal.company_id, body_company) {
            (Some(token), Some(body)) if *token != body => {
                return Err(Error::at(
                    ErrorCode::CompanyMismatch,
                    "/companyId",
                    "companyId differs from the company of the token.",
                ));
            }
            (Some(token), _) => Some(token.clone()),
            (None, body) => body,
        };

        let mut problems = match &parsed {
            Ok(_) => Vec::new(),
            Err(problems) => problems.clone(),
        };
        if company_id.is_none() && !problems.iter().any(|p| p.field() == Some("/companyId")) {
            problems.push(Problem::at(
                ErrorCode::MissingField,
                "/companyId",
                "companyId is required when the token carries no company.",
            ));
        }
        let template_id = body.text("templateId");
        let template = template_id.and_then(|id| partner.template(id));
        let mut checked = None;
        match (template_id, template, body.metadata()) {
            (Some(id), None, _) => problems.push(Problem::at(
                ErrorCode::UnknownTemplate,
                "/templateId",
                format!("The partner has no template {id:?}."),
            )),
            (_, Some(template), Some(metadata_text)) if body.metadata_is_object() => {
                checked = metadata::check(template, metadata_text, &mut problems);
            }
            _ => {}
        }
        if !problems.is_empty() {
            return Err(Error::Rejected(problems));
        }
        let request = parsed.expect("no problems means the request parsed");
        let template = template.expect("no problems means the template exists");
        let checked = checked.expect("no problems means the metadata passed its template");

        let members = body.members().expect("a parsed request is an object");
        let canonical =
            Canonical::of(members, Some(&checked.canonical)).map_err(anyhow::Error::from)?;
        let rendering = render(template, &request, &checked.value, &checked.digest)?;
        let body_hash = sha256_hex(canonical.json.as_bytes());
        Ok(Accepted {
            owner: AlertOwner {
                partner_id: partner_id.to_owned(),
                company_id: company_id.expect("no problems means a company"),
            },
            content: AlertContent {
                ext_ref: request.ext_ref,
                user_id: normalize_user_id(&request.user_id),
                template_id: request.template_id,
                template_version: template.version,
                msg_type: request.msg_type,
                topic: request.topic,
                title: request.title,
                created_at: request.created_at,
                expires_at: request.expires_at,
                body_hash,
                payload_metadata: Some(PayloadMetadata {
                    range: canonical.metadata_range(),
                    digest: checked.digest,
                }),
                payload: canonical.json,
                rendering,
            },
        })
    }
}

/// The alert through its template; a template that cannot render it refuses the alert (400)
/// rather than leave a broken card in an inbox.
fn render(
    template: &CompiledTemplate,
    request: &AlertRequest,
    metadata: &Value,
    metadata_digest: &[u8; 32],
) -> Result<Arc<Rendering>> {
    let fields = AlertFields {
        ext_ref: &request.ext_ref,
        template_id: &request.template_id,
        msg_type: &request.msg_type,
        topic: request.topic.as_deref(),
        title: request.title.as_deref(),
        created_at: &request.created_at,
        expires_at: request.expires_at,
    };
    template
        .renderer
        .render_cached(&fields, metadata, metadata_digest)
        .map_err(|err| {
            Error::Rejected(vec![
                Problem::new(
                    ErrorCode::TemplateRenderFailed,
                    format!(
                        "Template {} (version {}) cannot render this alert: {err}.",
                        template.template_id, template.version
                    ),
                )
                .with_detail("templateId", template.template_id.clone())
                .with_detail("templateVersion", template.version)
                .with_detail("source", err.template),
            ])
        })
}

/// Alert ids are prefixed (readable in logs) and time-ordered (UUID v7).
fn new_alert_id() -> String {
    format!("alt_{}", uuid::Uuid::now_v7().simple())
}

/// Whether `text` has the shape of an id this server hands out: `alt_` and 32 lowercase hex
/// digits.
pub fn is_alert_id(text: &str) -> bool {
    text.strip_prefix("alt_").is_some_and(|hex| {
        hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn alert_ids_have_one_shape() {
        let id = super::new_alert_id();
        assert!(super::is_alert_id(&id), "{id}");
        for other in [
            "",
            "alt_",
            "\u{0}",
            "ALT_0192",
            &id.to_uppercase(),
            &id[..35],
            &format!("{id}0"),
        ] {
            assert!(!super::is_alert_id(other), "{other:?}");
        }
    }
}
