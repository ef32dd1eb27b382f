//! Previewing an alert (SPEC §4.1): the body of a POST, checked exactly as a POST checks it —
//! the same code path, so the same errors — and rendered, with nothing stored. What a
//! partner's CI runs against its templates.

use std::sync::Arc;

use super::{AlertBody, AlertService, Submitter};
use crate::{error::Result, store::Rendering};

/// What the alert would look like in an inbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preview {
    pub template_id: String,
    pub template_version: i64,
    pub rendering: Arc<Rendering>,
}

impl AlertService {
    /// `POST /maestro/v4/alerts/preview`. The store is not consulted: whether the extRef is
    /// taken is not a property of the body, so a preview never answers `ALERT_EXISTS`.
    pub fn preview(&self, submitter: &Submitter, body: &AlertBody) -> Result<Preview> {
        let content = self.accept(submitter, body)?.content;
        Ok(Preview {
            template_id: content.template_id,
            template_version: content.template_version,
            rendering: content.rendering,
        })
    }
}
