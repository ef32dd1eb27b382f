//! The running server's view of partners and templates: loaded from the store on first use
//! (once, however many requests ask at the same time), kept for `catalog_refresh`, with each
//! template's schema and render sources compiled once per version (never per request). Nothing
//! here is state another instance needs: every entry can be rebuilt from the store, so several
//! instances may run side by side.

use std::{collections::HashMap, num::NonZeroU32, sync::Arc, time::Duration};

use anyhow::Context;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use time::OffsetDateTime;

use super::{Renderer, UrlPolicy, ValidMetadata, compile_schema, reloaded::Reloaded};
use crate::{
    error::{Error, Result},
    store::{DynStore, PartnerRecord, RateLimit, TemplateRecord},
};

pub struct CompiledTemplate {
    pub template_id: String,
    pub version: i64,
    pub content_hash: String,
    /// When this version was imported.
    pub created_at: OffsetDateTime,
    /// The metadata schema as the partner wrote it, which discovery shows.
    pub schema: serde_json::Value,
    pub validator: jsonschema::Validator,
    pub renderer: Renderer,
    /// Metadata this version has already accepted (its outcome depends on nothing else).
    pub valid_metadata: ValidMetadata,
}

pub struct CachedPartner {
    pub partner: PartnerRecord,
    templates: HashMap<String, Arc<CompiledTemplate>>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

impl CachedPartner {
    pub fn template(&self, template_id: &str) -> Option<&Arc<CompiledTemplate>> {
        self.templates.get(template_id)
    }

    /// Every template (its latest version), by id.
    pub fn templates(&self) -> Vec<&Arc<CompiledTemplate>> {
        let mut templates: Vec<_> = self.templates.values().collect();
        templates.sort_by(|a, b| a.template_id.cmp(&b.template_id));
        templates
    }

    /// Takes one request from the partner's budget, or says how long to wait (per instance).
    pub fn admit(&self) -> Result<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            Error::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }
}

pub struct Catalog {
    store: DynStore,
    /// By partner id; `None` for an id no partner has (so a stray token costs no look-up).
    partners: Reloaded<Option<Arc<CachedPartner>>>,
}

impl Catalog {
    pub fn new(store: DynStore, refresh: Duration) -> Self {
        Catalog {
            store,
            partners: Reloaded::new(refresh),
        }
    }

    /// The partner, if it is registered.
    pub async fn partner(&self, partner_id: &str) -> Result<Option<Arc<CachedPartner>>> {
        self.partners
            .get(partner_id, |previous| async move {
                let loaded = self.store.partner_with_templates(partner_id).await?;
                Ok(match loaded {
                    None => None,
                    Some((record, templates)) => Some(Arc::new(build(
                        record,
                        templates,
                        previous.flatten().as_deref(),
                    )?)),
                })
            })
            .await
    }
}

/// Builds a cache entry, reusing what has not changed since `previous`: compiled schemas and
/// renderers of unchanged templates, and the rate limiter (with its budget) when the limit is the same.
fn build(
    partner: PartnerRecord,
    templates: Vec<TemplateRecord>,
    previous: Option<&CachedPartner>,
) -> Result<CachedPartner> {
    let same_policy =
        previous.is_some_and(|p| p.partner.allowed_url_domains == partner.allowed_url_domains);
    let policy = UrlPolicy::new(&partner.allowed_url_domains);
    let mut compiled = HashMap::with_capacity(templates.len());
    for template in templates {
        let reusable = previous
            .filter(|_| same_policy)
            .and_then(|p| p.templates.get(&template.template_id))
            .filter(|t| t.version == template.version && t.content_hash == template.content_hash);
        let entry = match reusable {
            Some(existing) => existing.clone(),
            None => {
                let schema: serde_json::Value = serde_json::from_str(&template.schema_json)
                    .context("stored template schema is not JSON")?;
                let validator = compile_schema(&schema, policy.clone()).with_context(|| {
                    format!("stored template {}/{}", partner.id, template.template_id)
                })?;
                let renderer = Renderer::compile(&template.sources).with_context(|| {
                    format!("stored template {}/{}", partner.id, template.template_id)
                })?;
                Arc::new(CompiledTemplate {
                    template_id: template.template_id.clone(),
                    version: template.version,
                    content_hash: template.content_hash,
                    created_at: template.created_at,
                    schema,
                    validator,
                    renderer,
                    valid_metadata: ValidMetadata::default(),
                })
            }
        };
        compiled.insert(template.template_id, entry);
    }
    let limiter = match (partner.rate_limit, previous) {
        (Some(limit), Some(p)) if p.partner.rate_limit == Some(limit) => p.limiter.clone(),
        (Some(limit), _) => Some(Arc::new(limiter(limit))),
        (None, _) => None,
    };
    Ok(CachedPartner {
        partner,
        templates: compiled,
        limiter,
    })
}

fn limiter(limit: RateLimit) -> DefaultDirectRateLimiter {
    let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(limit.burst).unwrap_or(per_second);
    RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst))
}
