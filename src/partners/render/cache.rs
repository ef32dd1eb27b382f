//! Renderings kept per template version. Partners fan one offer out to many travellers at once
//! (SPEC: bursts), and those alerts differ only in fields templates rarely show; the same inputs
//! render the same output, so it is rendered once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;

use super::{AlertFields, RenderError, Renderer};
use crate::store::Rendering;

const CACHED_RENDERINGS: usize = 256;

/// Recent renderings by a digest of exactly what the templates read.
pub(super) struct RenderingCache {
    /// The `alert` fields the sources read; `None` when they use `alert` as a whole.
    pub(super) alert_fields_read: Option<Vec<String>>,
    /// Shared, not copied: a hit hands out the same rendering to every alert of a fan-out.
    entries: Mutex<HashMap<[u8; 32], Arc<Rendering>>>,
}

impl RenderingCache {
    pub(super) fn new(alert_fields_read: Option<Vec<String>>) -> RenderingCache {
        RenderingCache {
            alert_fields_read,
            entries: Mutex::new(HashMap::new()),
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().expect("not poisoned").len()
    }

    /// SHA-256 of every input the templates read: the `alert` fields they name (all of them
    /// when they use `alert` whole) and the metadata.
    fn inputs_digest(&self, alert: &AlertFields<'_>, metadata_digest: &[u8; 32]) -> [u8; 32] {
        let expires_at = alert.expires_at.format(&Rfc3339).unwrap_or_default();
        let fields = [
            ("extRef", Some(alert.ext_ref)),
            ("templateId", Some(alert.template_id)),
            ("msgType", Some(alert.msg_type)),
            ("topic", alert.topic),
            ("title", alert.title),
            ("createdAt", Some(alert.created_at)),
            ("expiresAt", Some(expires_at.as_str())),
        ];
        let mut hasher = Sha256::new();
        for (name, value) in fields {
            let read = self
                .alert_fields_read
                .as_ref()
                .is_none_or(|read| read.iter().any(|r| r == name));
            if read {
                hasher.update(name.as_bytes());
                match value {
                    // Length-prefixed, so that no two different inputs hash the same bytes.
                    Some(value) => {
                        hasher.update((value.len() as u64 + 1).to_le_bytes());
                        hasher.update(value.as_bytes());
                    }
                    None => hasher.update(0u64.to_le_bytes()),
                }
            }
        }
        hasher.update(b"metadata");
        hasher.update(metadata_digest);
        hasher.finalize().into()
    }
}

impl Renderer {
    /// Like [`Renderer::render`], answering from the cache when the templates would see the
    /// same values again.
    /// `metadata_digest` is the SHA-256 of the canonical JSON of `metadata` (made once per checked
    /// metadata), which the cache key includes.
    pub fn render_cached(
        &self,
        alert: &AlertFields<'_>,
        metadata: &serde_json::Value,
        metadata_digest: &[u8; 32],
    ) -> Result<Arc<Rendering>, RenderError> {
        let key = self.cache.inputs_digest(alert, metadata_digest);
        if let Some(hit) = self.cache.entries.lock().expect("not poisoned").get(&key) {
            return Ok(Arc::clone(hit));
        }
        let rendering = Arc::new(self.render(alert, metadata)?);
        let mut entries = self.cache.entries.lock().expect("not poisoned");
        if entries.len() >= CACHED_RENDERINGS {
            // Bursts repeat one offer back to back; a cleared cache refills at once.
            entries.clear();
        }
        entries.insert(key, Arc::clone(&rendering));
        Ok(rendering)
    }
}
