//! Discovery (SPEC §4.1): a partner reads its own templates, each with the JSON Schema its
//! alerts' `metadata` must satisfy, from the catalogue the checks themselves use.

use std::sync::Arc;

use super::PartnerCaller;
use crate::{
    error::{Error, ErrorCode, Result},
    partners::CompiledTemplate,
};

impl PartnerCaller {
    /// The partner's templates, the latest version of each, by id.
    pub fn templates(&self) -> Vec<Arc<CompiledTemplate>> {
        self.partner.templates().into_iter().cloned().collect()
    }

    /// One of the partner's templates. Another partner's is as unknown as one that does not
    /// exist: 404 `UNKNOWN_TEMPLATE`.
    pub fn template(&self, template_id: &str) -> Result<Arc<CompiledTemplate>> {
        self.partner.template(template_id).cloned().ok_or_else(|| {
            Error::not_found(
                ErrorCode::UnknownTemplate,
                "The partner has no template with this id.",
            )
        })
    }
}
